//! Compiles etcd 3.4's own .proto files (from Debian's golang-etcd-server-dev) and
//! checks that every service, RPC, message, field and enum value they define exists in
//! oxetcd's protos with the same name, number, type, label and streaming mode. Our
//! protos may add (etcd 3.5/3.6 fields and RPCs); they may not differ.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost_types::{
    DescriptorProto, EnumDescriptorProto, FileDescriptorSet, ServiceDescriptorProto,
};

const GOCODE: &str = "/usr/share/gocode/src";
const ETCD_PROTOS: &[&str] = &[
    "etcd/etcdserver/etcdserverpb/rpc.proto",
    "etcd/etcdserver/api/v3lock/v3lockpb/v3lock.proto",
    "etcd/etcdserver/api/v3election/v3electionpb/v3election.proto",
];
const OUR_PROTOS: &[&str] =
    &["etcdserverpb/rpc.proto", "v3lockpb/v3lock.proto", "v3electionpb/v3election.proto"];
/// Packages whose contents must match; etcd's files also pull in gogoproto and
/// google.api, which are annotations and not part of the wire.
const WIRE_PACKAGES: &[&str] = &["etcdserverpb", "mvccpb", "authpb", "v3lockpb", "v3electionpb"];

#[derive(Default)]
struct Definitions {
    messages: BTreeMap<String, DescriptorProto>,
    enums: BTreeMap<String, EnumDescriptorProto>,
    services: BTreeMap<String, ServiceDescriptorProto>,
}

impl Definitions {
    fn of(set: &FileDescriptorSet) -> Definitions {
        let mut defs = Definitions::default();
        for file in &set.file {
            let package = file.package();
            if !WIRE_PACKAGES.contains(&package) {
                continue;
            }
            for message in &file.message_type {
                defs.add_message(&format!(".{package}"), message);
            }
            for e in &file.enum_type {
                defs.enums.insert(format!(".{package}.{}", e.name()), e.clone());
            }
            for s in &file.service {
                defs.services.insert(format!("{package}.{}", s.name()), s.clone());
            }
        }
        defs
    }

    fn add_message(&mut self, scope: &str, message: &DescriptorProto) {
        let name = format!("{scope}.{}", message.name());
        for nested in &message.nested_type {
            self.add_message(&name, nested);
        }
        for e in &message.enum_type {
            self.enums.insert(format!("{name}.{}", e.name()), e.clone());
        }
        self.messages.insert(name, message.clone());
    }
}

fn etcd_definitions() -> Definitions {
    let etcd_root = Path::new(GOCODE).join("go.etcd.io");
    assert!(
        etcd_root.join(ETCD_PROTOS[0]).exists(),
        "etcd's .proto files are missing under {}: the compatibility suite needs Debian's \
         golang-etcd-server-dev; run scripts/compat.sh",
        etcd_root.display()
    );
    let includes = [
        etcd_root,
        Path::new(GOCODE).join("github.com/gogo/protobuf"),
        Path::new(GOCODE).join("github.com/gogo/protobuf/protobuf"),
        Path::new(GOCODE).join("github.com/grpc-ecosystem/grpc-gateway/third_party/googleapis"),
    ];
    let files: Vec<PathBuf> = ETCD_PROTOS.iter().map(|p| includes[0].join(p)).collect();
    Definitions::of(&protox::compile(&files, &includes).expect("compile etcd's protos"))
}

fn our_definitions() -> Definitions {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/api/proto");
    let files: Vec<PathBuf> = OUR_PROTOS.iter().map(|p| root.join(p)).collect();
    Definitions::of(&protox::compile(&files, [&root]).expect("compile oxetcd's protos"))
}

#[test]
fn every_etcd_definition_is_reproduced_exactly() {
    let etcd = etcd_definitions();
    let ours = our_definitions();
    let mut differences = Vec::new();

    for (name, theirs) in &etcd.messages {
        let Some(mine) = ours.messages.get(name) else {
            differences.push(format!("message {name} is missing"));
            continue;
        };
        for field in &theirs.field {
            let same_number = mine.field.iter().find(|f| f.number == field.number);
            let wire = |f: &prost_types::FieldDescriptorProto| {
                (
                    f.name().to_string(),
                    f.r#type(),
                    f.label(),
                    f.type_name().to_string(),
                    f.oneof_index,
                )
            };
            match same_number {
                Some(m) if wire(m) == wire(field) => {}
                Some(m) => differences.push(format!(
                    "{name} field {}: etcd has {:?}, oxetcd has {:?}",
                    field.number(),
                    wire(field),
                    wire(m)
                )),
                None => differences.push(format!(
                    "{name} field {} ({}) is missing",
                    field.number(),
                    field.name()
                )),
            }
        }
    }
    for (name, theirs) in &etcd.enums {
        let Some(mine) = ours.enums.get(name) else {
            differences.push(format!("enum {name} is missing"));
            continue;
        };
        for value in &theirs.value {
            if !mine.value.iter().any(|v| v.name() == value.name() && v.number() == value.number())
            {
                differences.push(format!(
                    "enum {name} value {} = {} differs",
                    value.name(),
                    value.number()
                ));
            }
        }
    }
    for (name, theirs) in &etcd.services {
        let Some(mine) = ours.services.get(name) else {
            differences.push(format!("service {name} is missing"));
            continue;
        };
        for method in &theirs.method {
            let shape = |m: &prost_types::MethodDescriptorProto| {
                (
                    m.input_type().to_string(),
                    m.output_type().to_string(),
                    m.client_streaming(),
                    m.server_streaming(),
                )
            };
            match mine.method.iter().find(|m| m.name() == method.name()) {
                Some(m) if shape(m) == shape(method) => {}
                Some(m) => differences.push(format!(
                    "rpc {name}.{}: etcd has {:?}, oxetcd has {:?}",
                    method.name(),
                    shape(method),
                    shape(m)
                )),
                None => differences.push(format!("rpc {name}.{} is missing", method.name())),
            }
        }
    }

    // Sanity: the comparison really covered the contract.
    assert!(etcd.messages.len() > 100, "only {} etcd messages compiled", etcd.messages.len());
    assert!(etcd.services.len() == 8, "etcd services: {:?}", etcd.services.keys());
    assert!(
        differences.is_empty(),
        "wire contract differs from etcd 3.4:\n{}",
        differences.join("\n")
    );
}
