//! The deployment is locked down, checked on what AWS's SAM translator makes of `template.yaml`
//! (`infra/sam_transform.py`, the transform CloudFormation runs): least-privilege roles, the JWT
//! authorizer and the code's OAuth scopes on every route, a cache only the functions can reach
//! and only with AUTH; and the Lambda bootstraps are built without unverified TLS. Every check
//! also runs on a broken template, to prove it fails.

use std::path::PathBuf;

use flashstock::http::Route;
use serde_json::Value as Json;
use serde_yaml_ng::Value;

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn template() -> Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml"))
        .expect("template parses")
}

/// The template as CloudFormation sees it after the SAM transform.
fn transformed(t: &Value) -> Json {
    let dir = std::env::temp_dir().join(format!("flashstock-sam-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("template.yaml");
    std::fs::write(&path, serde_yaml_ng::to_string(t).expect("yaml")).expect("write");
    let python = root().join(".venv/bin/python");
    assert!(python.exists(), "{python:?} missing: run infra/setup.sh (infra/test.sh does)");
    let out = std::process::Command::new(python)
        .arg(root().join("infra/sam_transform.py"))
        .arg(&path)
        .output()
        .expect("sam_transform.py runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "SAM transform failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("transform prints JSON")
}

/// The only actions IAM accepts solely on `Resource: "*"` (no resource-level permissions) that
/// the functions need: Lambda's VPC network interfaces, and X-Ray when tracing is on.
const ONLY_ON_STAR: [&str; 4] =
    ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "xray:PutTraceSegments", "xray:PutTelemetryRecords"];

fn strings(v: &Json) -> Vec<&str> {
    match v {
        Json::String(s) => vec![s.as_str()],
        Json::Array(a) => a.iter().filter_map(Json::as_str).collect(),
        _ => vec![],
    }
}

/// Every statement of a policy document, both branches of an `Fn::If` included.
fn statements(doc: &Json) -> Vec<&Json> {
    fn collect<'a>(v: &'a Json, out: &mut Vec<&'a Json>) {
        match v {
            Json::Array(a) => a.iter().for_each(|x| collect(x, out)),
            Json::Object(o) if o.contains_key("Fn::If") => {
                o["Fn::If"].as_array().into_iter().flatten().skip(1).for_each(|x| collect(x, out));
            }
            Json::Object(o) if o.contains_key("Effect") => out.push(v),
            _ => {}
        }
    }
    let mut out = Vec::new();
    collect(&doc["Statement"], &mut out);
    out
}

fn resources(t: &Json) -> impl Iterator<Item = (&String, &Json)> {
    t["Resources"].as_object().into_iter().flatten()
}

/// IAM: no wildcard action, no grant on `*` but [`ONLY_ON_STAR`], no AWS managed policy, no
/// `Not*` element; every function runs under a role of the template's own.
fn iam_problems(t: &Json) -> Vec<String> {
    let mut p = Vec::new();
    for (name, r) in resources(t) {
        let props = &r["Properties"];
        let docs: Vec<&Json> = match r["Type"].as_str() {
            Some("AWS::IAM::Role") => {
                for arn in props["ManagedPolicyArns"].as_array().into_iter().flatten() {
                    if arn.as_str().is_some_and(|a| a.contains(":iam::aws:policy/")) {
                        p.push(format!("{name}: AWS managed policy {arn}"));
                    }
                }
                props["Policies"].as_array().into_iter().flatten().map(|x| &x["PolicyDocument"]).collect()
            }
            Some("AWS::IAM::ManagedPolicy" | "AWS::IAM::Policy") => vec![&props["PolicyDocument"]],
            Some("AWS::Lambda::Function") => {
                let role = props["Role"]["Fn::GetAtt"][0].as_str().unwrap_or("");
                if t["Resources"][role]["Type"] != "AWS::IAM::Role" || role.ends_with("FunctionRole") {
                    p.push(format!("{name}: runs under {role:?}, not a role of the template's own"));
                }
                vec![]
            }
            _ => vec![],
        };
        for s in docs.into_iter().flat_map(statements) {
            for k in ["NotAction", "NotResource", "NotPrincipal"] {
                if !s[k].is_null() {
                    p.push(format!("{name}: {k} in {s}"));
                }
            }
            let actions = strings(&s["Action"]);
            if actions.iter().any(|a| a.contains('*')) {
                p.push(format!("{name}: wildcard action in {s}"));
            }
            if strings(&s["Resource"]).contains(&"*") && !actions.iter().all(|a| ONLY_ON_STAR.contains(a)) {
                p.push(format!("{name}: grants {actions:?} on \"*\""));
            }
        }
    }
    p
}

/// Routes: every operation of the API has the JWT authorizer with exactly the scope the code
/// requires of its route; the authorizer checks issuer and audience.
fn auth_problems(t: &Json) -> Vec<String> {
    let mut p = Vec::new();
    let body = &t["Resources"]["HttpApi"]["Properties"]["Body"];
    let jwt = &body["components"]["securitySchemes"]["Jwt"]["x-amazon-apigateway-authorizer"];
    for field in ["issuer", "audience"] {
        if jwt["jwtConfiguration"][field].is_null() {
            p.push(format!("the JWT authorizer does not check {field}"));
        }
    }
    let mut seen = 0;
    for (path, ops) in body["paths"].as_object().into_iter().flatten() {
        for (method, op) in ops.as_object().into_iter().flatten() {
            let key = format!("{} {path}", method.to_uppercase());
            let Some(route) = Route::ALL.iter().find(|r| r.key() == key) else {
                p.push(format!("{key}: a route the code does not serve"));
                continue;
            };
            seen += 1;
            let want: Vec<&str> = route.scope().into_iter().collect();
            let security = op["security"].as_array().cloned().unwrap_or_default();
            match security.as_slice() {
                [one] if one.get("Jwt").is_some() => {
                    let got = strings(&one["Jwt"]);
                    if got != want {
                        p.push(format!("{key}: scopes {got:?}, the code requires {want:?}"));
                    }
                }
                other => p.push(format!("{key}: not behind the JWT authorizer ({other:?})")),
            }
        }
    }
    if seen != Route::ALL.len() {
        p.push(format!("{seen} of the code's {} routes are in the API", Route::ALL.len()));
    }
    p
}

fn is_ref(v: &Json, name: &str) -> bool {
    v["Ref"] == name || v["Fn::GetAtt"][0] == name
}

/// The cache: AUTH (a user group) on, its only security group admitting the cache ports from the
/// functions' group alone.
fn redis_problems(t: &Json) -> Vec<String> {
    let mut p = Vec::new();
    let cache = &t["Resources"]["RedisCache"]["Properties"];
    if !is_ref(&cache["UserGroupId"], "RedisUserGroup") {
        p.push("RedisCache: no user group (AUTH off)".to_owned());
    }
    let groups = cache["SecurityGroupIds"].as_array().cloned().unwrap_or_default();
    if groups.len() != 1 || !is_ref(&groups[0], "CacheSecurityGroup") {
        p.push(format!("RedisCache: security groups {groups:?}, want only CacheSecurityGroup"));
    }
    let sg = &t["Resources"]["CacheSecurityGroup"]["Properties"];
    if !sg["SecurityGroupIngress"].is_null() {
        p.push("CacheSecurityGroup: inline ingress rules".to_owned());
    }
    for (name, r) in resources(t) {
        if r["Type"] != "AWS::EC2::SecurityGroupIngress" || !is_ref(&r["Properties"]["GroupId"], "CacheSecurityGroup") {
            continue;
        }
        let rule = &r["Properties"];
        let from_functions = is_ref(&rule["SourceSecurityGroupId"], "FunctionSecurityGroup");
        let open = ["CidrIp", "CidrIpv6", "SourcePrefixListId"].iter().any(|k| !rule[*k].is_null());
        let ports = (rule["FromPort"].as_i64(), rule["ToPort"].as_i64());
        if !from_functions || open || rule["IpProtocol"] != "tcp" || ports.0 < Some(6379) || ports.1 > Some(6380) {
            p.push(format!("{name}: the cache admits {rule}"));
        }
    }
    p
}

/// Asserts one of the problems found starts with `want`.
#[track_caller]
fn found(problems: &[String], want: &str) {
    assert!(problems.iter().any(|x| x.starts_with(want)), "{want}: {problems:#?}");
}

#[test]
fn the_transformed_template_is_locked_down() {
    let t = transformed(&template());
    let mut p = iam_problems(&t);
    p.extend(auth_problems(&t));
    p.extend(redis_problems(&t));
    assert!(p.is_empty(), "template.yaml problems:\n{}", p.join("\n"));
}

#[test]
fn the_lockdown_checks_catch_a_broken_template() {
    let yaml = |s: &str| -> Value { serde_yaml_ng::from_str(s).unwrap() };
    let statement = |t: &mut Value, role: &str, s: &str| {
        if let Some(v) =
            t["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].as_sequence_mut()
        {
            v.push(yaml(s));
        }
    };
    let mut t = template();
    statement(&mut t, "ApiRole", r#"{ Effect: Allow, Action: [dynamodb:GetItem], Resource: "*" }"#);
    statement(
        &mut t,
        "PersistRole",
        r#"{ Effect: Allow, Action: ["sqs:*"], Resource: { "Fn::GetAtt": [TimeoutQueue, Arn] } }"#,
    );
    t["Resources"]["CancelRole"]["Properties"]["ManagedPolicyArns"] =
        yaml(r#"["arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"]"#);
    if let Some(m) = t["Resources"]["ReconcileFunction"]["Properties"].as_mapping_mut() {
        m.remove("Role");
        m.insert(Value::from("Policies"), yaml("[AWSLambdaBasicExecutionRole]"));
    }
    let p = iam_problems(&transformed(&t));
    for want in [
        "ApiRole: grants [\"dynamodb:GetItem\"] on \"*\"",
        "PersistRole: wildcard action",
        "CancelRole: AWS managed policy",
        "ReconcileFunction: runs under",
    ] {
        found(&p, want);
    }

    let mut t = template();
    let events =
        |t: &mut Value, e: &str| t["Resources"]["ApiFunction"]["Properties"]["Events"][e]["Properties"].clone();
    let mut reserve = events(&mut t, "Reserve");
    reserve["Auth"] = yaml("{ Authorizer: NONE }");
    t["Resources"]["ApiFunction"]["Properties"]["Events"]["Reserve"]["Properties"] = reserve;
    let mut warm = events(&mut t, "WarmUp");
    warm["Auth"] = yaml("{ Authorizer: Jwt }");
    t["Resources"]["ApiFunction"]["Properties"]["Events"]["WarmUp"]["Properties"] = warm;
    let mut confirm = events(&mut t, "Confirm");
    confirm["Auth"] = yaml("{ Authorizer: Jwt, AuthorizationScopes: [flashstock/admin] }");
    t["Resources"]["ApiFunction"]["Properties"]["Events"]["Confirm"]["Properties"] = confirm;
    let p = auth_problems(&transformed(&t));
    for want in [
        "POST /v1/collections/{collectionId}/reservations: not behind the JWT authorizer",
        "POST /v1/admin/collections/{collectionId}/warmup: scopes []",
        "POST /v1/collections/{collectionId}/reservations/{orderId}/confirm: scopes [\"flashstock/admin\"]",
    ] {
        found(&p, want);
    }

    let mut t = template();
    t["Resources"]["CacheSecurityGroup"]["Properties"]["SecurityGroupIngress"] =
        yaml("[{ IpProtocol: tcp, FromPort: 6379, ToPort: 6379, CidrIp: 10.0.0.0/8 }]");
    t["Resources"]["CacheFromFunctionsIngress"]["Properties"]["CidrIp"] = Value::from("0.0.0.0/0");
    if let Some(m) = t["Resources"]["RedisCache"]["Properties"].as_mapping_mut() {
        m.remove("UserGroupId");
    }
    t["Resources"]["RedisCache"]["Properties"]["SecurityGroupIds"] =
        yaml("[{ Ref: CacheSecurityGroup }, { Ref: FunctionSecurityGroup }]");
    let p = redis_problems(&transformed(&t));
    for want in [
        "RedisCache: no user group",
        "RedisCache: security groups",
        "CacheSecurityGroup: inline ingress",
        "CacheFromFunctionsIngress: the cache admits",
    ] {
        found(&p, want);
    }
}

#[test]
fn lambda_bootstraps_are_built_without_unverified_tls() {
    // The functions alone, as `infra/build-lambdas.sh` builds them (features unify per build).
    let mut cmd = std::process::Command::new(env!("CARGO"));
    cmd.args(["tree", "--edges", "features", "--prefix", "none", "--offline"]).current_dir(root());
    for p in ["flashstock-api", "flashstock-persist", "flashstock-cancel", "flashstock-reconcile"] {
        cmd.args(["-p", p]);
    }
    let out = cmd.output().expect("cargo tree");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("redis feature \"tokio-rustls-comp\""), "the tree lists redis's features");
    assert!(!tree.contains("tls-rustls-insecure"), "unverified TLS in a bootstrap build");
    // While the local stack's build has it (for its self-signed test redis).
    let out = std::process::Command::new(env!("CARGO"))
        .args(["tree", "--edges", "features", "--prefix", "none", "--offline", "-p", "flashstock-local"])
        .current_dir(root())
        .output()
        .expect("cargo tree");
    assert!(String::from_utf8_lossy(&out.stdout).contains("tls-rustls-insecure"));
}
