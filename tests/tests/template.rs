//! `template.yaml` and the code must agree: every function has a binary and vice versa, every
//! route the code serves is declared, and every binary starts with only what the template
//! gives it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_norway::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn template() -> Value {
    serde_norway::from_str(&std::fs::read_to_string(root().join("template.yaml")).unwrap()).unwrap()
}

/// A variable's value in the template: a literal, or something CloudFormation resolves.
#[derive(Debug)]
enum Setting {
    Literal(String),
    Resolved,
    /// `!If [..., ..., !Ref AWS::NoValue]`: set only in some deployments.
    Optional,
}

struct TemplateFunction {
    binary: String,
    environment: BTreeMap<String, Setting>,
    routes: Vec<(String, String)>,
}

fn setting(value: &Value) -> Setting {
    match value {
        Value::String(s) => Setting::Literal(s.clone()),
        Value::Number(n) => Setting::Literal(n.to_string()),
        Value::Tagged(tagged) if tagged.tag == "If" => {
            let text = serde_norway::to_string(&tagged.value).unwrap();
            if text.contains("AWS::NoValue") {
                Setting::Optional
            } else {
                Setting::Resolved
            }
        }
        _ => Setting::Resolved,
    }
}

fn functions() -> Vec<TemplateFunction> {
    let template = template();
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(globals["Architectures"][0].as_str(), Some("arm64"));
    assert_eq!(globals["Handler"].as_str(), Some("bootstrap"));
    let mut found = Vec::new();
    for (_, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        assert_eq!(resource["Metadata"]["BuildMethod"].as_str(), Some("rust-cargolambda"));
        let binary = resource["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap().to_string();
        let properties = &resource["Properties"];
        let environment = properties["Environment"]["Variables"]
            .as_mapping()
            .map(|vars| vars.iter().map(|(k, v)| (k.as_str().unwrap().to_string(), setting(v))).collect())
            .unwrap_or_default();
        let mut routes = Vec::new();
        if let Some(events) = properties["Events"].as_mapping() {
            for (_, event) in events {
                if event["Type"].as_str() == Some("HttpApi") {
                    let p = &event["Properties"];
                    routes
                        .push((p["Method"].as_str().unwrap().to_uppercase(), p["Path"].as_str().unwrap().to_string()));
                }
            }
        }
        found.push(TemplateFunction { binary, environment, routes });
    }
    found
}

fn workspace_functions() -> BTreeSet<String> {
    std::fs::read_dir(root().join("functions"))
        .unwrap()
        .filter_map(|entry| {
            let manifest = std::fs::read_to_string(entry.ok()?.path().join("Cargo.toml")).ok()?;
            let name = manifest.lines().find_map(|l| l.strip_prefix("name = "))?;
            Some(name.trim_matches('"').to_string())
        })
        .collect()
}

#[test]
fn every_template_function_has_a_binary_and_every_binary_a_function() {
    let declared: BTreeSet<String> = functions().into_iter().map(|f| f.binary).collect();
    assert_eq!(declared, workspace_functions());
    assert_eq!(declared.len(), 5);
}

#[test]
fn the_template_declares_exactly_the_routes_the_code_serves() {
    let declared: BTreeSet<(String, String, String)> = functions()
        .into_iter()
        .flat_map(|f| f.routes.into_iter().map(move |(m, p)| (f.binary.clone(), m, p)))
        .collect();
    let served: BTreeSet<(String, String, String)> = expense_sync::edge::ROUTES
        .iter()
        .map(|r| (r.binary.to_string(), r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(declared, served);
}

#[test]
fn stream_triggers_only_see_the_transitions_they_act_on() {
    let template = template();
    let resources = &template["Resources"];
    for (function, wanted) in [("SyncInitiationFunction", 3), ("AttachmentUploadFunction", 1)] {
        let events = resources[function]["Properties"]["Events"].as_mapping().unwrap();
        let stream = events.values().find(|e| e["Type"].as_str() == Some("DynamoDB")).unwrap();
        let p = &stream["Properties"];
        assert_eq!(p["FilterCriteria"]["Filters"].as_sequence().unwrap().len(), wanted, "{function}");
        assert_eq!(p["FunctionResponseTypes"][0].as_str(), Some("ReportBatchItemFailures"), "{function}");
        assert_eq!(p["BisectBatchOnFunctionError"].as_bool(), Some(true), "{function}");
        assert!(p["MaximumRetryAttempts"].as_u64().is_some_and(|n| n <= 10), "{function}");
        assert!(p["DestinationConfig"]["OnFailure"]["Destination"].is_tagged(), "{function}");
        for filter in p["FilterCriteria"]["Filters"].as_sequence().unwrap() {
            serde_json::from_str::<serde_json::Value>(filter["Pattern"].as_str().unwrap()).expect("filter is JSON");
        }
    }
}

#[test]
fn a_claim_outlives_every_invocation_that_can_take_one() {
    // approval-intake and the sweep claim expenses before a create, attachment-upload before an
    // upload: the sweep may only call a claim abandoned once its invocation cannot still run.
    let template = template();
    let resources = &template["Resources"];
    let timeout = |function: &str| resources[function]["Properties"]["Timeout"].as_u64().unwrap();
    let claim = resources["SyncInitiationFunction"]["Properties"]["Environment"]["Variables"]
        ["SWEEP_CLAIM_TIMEOUT_SECONDS"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    for function in ["ApprovalIntakeFunction", "SyncInitiationFunction", "AttachmentUploadFunction"] {
        assert!(claim > timeout(function) + 30, "{function}: Timeout {} s, claim timeout {claim} s", timeout(function));
    }
}

trait Tagged {
    fn is_tagged(&self) -> bool;
}

impl Tagged for Value {
    fn is_tagged(&self) -> bool {
        matches!(self, Value::Tagged(_))
    }
}

// ---- every binary starts with only the template's environment ----

fn binary_path(binary: &str) -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root().join("target"));
    target.join("debug").join(binary)
}

/// Creates a secret in moto's Secrets Manager; returns its ARN.
fn moto_secret(name: &str, value: &str) -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL: run `local/devenv.py test`");
    let body = serde_json::json!({"Name": format!("{name}-{}", uuid::Uuid::new_v4()), "SecretString": value});
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let answer: serde_json::Value = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{endpoint}/"))
            .header("x-amz-target", "secretsmanager.CreateSecret")
            .header("content-type", "application/x-amz-json-1.1")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=local/20240101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=0",
            )
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    answer["ARN"].as_str().unwrap_or_else(|| panic!("moto did not create the secret: {answer}")).to_string()
}

/// The template's variables with local values: references resolve to what the local
/// environment provides, `*_SECRET_ARN` to a moto secret holding the local value.
fn resolve(function: &TemplateFunction) -> BTreeMap<String, String> {
    let mut resolved = BTreeMap::new();
    for (name, setting) in &function.environment {
        let value = match setting {
            Setting::Literal(value) => value.clone(),
            Setting::Optional => continue,
            Setting::Resolved => match name.strip_suffix("_SECRET_ARN") {
                Some(plain) => moto_secret(plain, &std::env::var(plain).unwrap()),
                None => std::env::var(name).unwrap_or_else(|_| panic!("no local value for {name}")),
            },
        };
        resolved.insert(name.clone(), value);
    }
    resolved
}

/// Starts the binary under a fake Lambda runtime API; true when it asks for its first event
/// (its cold start succeeded), false when it exits first.
fn starts(binary: &str, environment: &BTreeMap<String, String>) -> Result<(), String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let runtime_api = listener.local_addr().unwrap().to_string();
    let mut child = Command::new(binary_path(binary))
        .env_clear()
        .envs(environment)
        .envs(
            [
                "AWS_REGION",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_EC2_METADATA_DISABLED",
                "AWS_ENDPOINT_URL",
            ]
            .map(|k| (k, std::env::var(k).unwrap_or_default())),
        )
        // What Lambda itself sets, not the template.
        .env("AWS_LAMBDA_RUNTIME_API", &runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", binary)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{binary}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{binary} not built ({e}): run `local/devenv.py test`"));
    let started = Instant::now();
    let result = loop {
        if let Ok((mut stream, _)) = listener.accept() {
            use std::io::Read;
            stream.set_nonblocking(false).unwrap();
            let mut request = [0u8; 256];
            let n = stream.read(&mut request).unwrap_or(0);
            let line = String::from_utf8_lossy(&request[..n]).lines().next().unwrap_or_default().to_string();
            break if line.contains("/runtime/invocation/next") { Ok(()) } else { Err(format!("asked {line}")) };
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            use std::io::Read;
            child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
            break Err(format!("exited with {status}: {stderr}"));
        }
        if started.elapsed() > Duration::from_secs(20) {
            break Err("did not reach the runtime API within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

#[test]
#[ignore = "needs the local environment: run `local/devenv.py test`"]
fn every_function_starts_with_only_the_environment_the_template_sets() {
    for function in functions() {
        let environment = resolve(&function);
        if let Err(why) = starts(&function.binary, &environment) {
            panic!("{} with {:?}: {why}", function.binary, environment.keys().collect::<Vec<_>>());
        }
    }
    // The check has teeth: a variable the code reads and the template forgot fails it.
    let intake = functions().into_iter().find(|f| f.binary == "approval-intake").unwrap();
    let mut environment = resolve(&intake);
    environment.remove("RECEIPTS_BUCKET");
    let why = starts("approval-intake", &environment).unwrap_err();
    assert!(why.contains("RECEIPTS_BUCKET"), "{why}");
}
