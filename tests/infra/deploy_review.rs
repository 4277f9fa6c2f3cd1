//! The defects a deployer's review of the template found (issue #13), each as a check of the
//! template and a canary that puts the defect back into a copy of it: the check must fail on the
//! copy (`deploy_review_checks_catch_the_defects`). None of these is visible to cfn-lint, the
//! serverless rules, `sam validate` or checkov.

use super::*;

/// The template with some parameters set to other values than their defaults (the stack a
/// `sam deploy --parameter-overrides ...` creates).
pub(super) fn with_parameters(t: &Template, overrides: &[(&str, &str)]) -> Template {
    let mut defaults = t.defaults.clone();
    for (name, value) in overrides {
        ensure_parameter(t, name);
        defaults.insert((*name).to_owned(), Value::String((*value).to_owned()));
    }
    Template {
        root: t.root.clone(),
        defaults,
    }
}

fn ensure_parameter(t: &Template, name: &str) {
    assert!(
        t.root["Parameters"].get(name).is_some(),
        "parameter {name} missing"
    );
}

/// Does the resource exist for these parameters (its `Condition`, if any, holds)?
pub(super) fn exists(t: &Template, resource: &Value) -> bool {
    resource["Condition"]
        .as_str()
        .is_none_or(|condition| t.condition(condition))
}

fn referenced(value: &Value) -> Option<&str> {
    value["Ref"].as_str()
}

// --- 1. RDS Proxy reaches Secrets Manager through the interface endpoint ------------------------

/// The security groups that admit TCP `port` into `group` (its inline ingress rules and the
/// `AWS::EC2::SecurityGroupIngress` resources that exist for these parameters).
pub(super) fn sources(t: &Template, group: &str, port: f64) -> BTreeSet<String> {
    let admits_443 = |rule: &Value| {
        let from = t.number(&rule["FromPort"]);
        let to = t.number(&rule["ToPort"]);
        (rule["IpProtocol"] == "tcp" || rule["IpProtocol"] == "-1") && from <= port && port <= to
    };
    let mut sources = BTreeSet::new();
    let resource = t.resource(group);
    for rule in resource["Properties"]["SecurityGroupIngress"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if admits_443(rule) {
            if let Some(source) = referenced(&t.resolve(&rule["SourceSecurityGroupId"])) {
                sources.insert(source.to_owned());
            }
        }
    }
    for (_, rule) in t.of_type("AWS::EC2::SecurityGroupIngress") {
        let p = &rule["Properties"];
        if exists(t, rule) && referenced(&p["GroupId"]) == Some(group) && admits_443(p) {
            if let Some(source) = referenced(&t.resolve(&p["SourceSecurityGroupId"])) {
                sources.insert(source.to_owned());
            }
        }
    }
    sources
}

pub(super) fn check_secrets_endpoint_admits_everyone_who_reads_a_secret(
    t: &Template,
) -> CheckResult {
    let (endpoint, resource) = t
        .of_type("AWS::EC2::VPCEndpoint")
        .find(|(_, e)| {
            e["Properties"]["ServiceName"]["Fn::Sub"]
                .as_str()
                .is_some_and(|s| s.ends_with(".secretsmanager"))
        })
        .ok_or("no Secrets Manager interface endpoint")?;
    ensure!(
        is_true(&resource["Properties"]["PrivateDnsEnabled"]),
        "{endpoint}: private DNS (the secretsmanager name must resolve to the endpoint)"
    );
    let mut admitted = BTreeSet::new();
    for group in resource["Properties"]["SecurityGroupIds"]
        .as_array()
        .ok_or("endpoint security groups")?
    {
        let group = referenced(group).ok_or("endpoint security group is a !Ref")?;
        admitted.extend(sources(t, group, 443.0));
    }
    // Who reads a secret from inside the VPC: the functions, RDS Proxy (its credentials), the
    // rotation functions and the ECS tasks (the ingester; whether or not its service exists yet).
    let mut readers: Vec<(String, String)> = Vec::new();
    for group in t.root["Globals"]["Function"]["VpcConfig"]["SecurityGroupIds"]
        .as_array()
        .ok_or("functions' security groups")?
    {
        readers.push((
            "the functions".into(),
            referenced(group).ok_or("a !Ref")?.to_owned(),
        ));
    }
    for (proxy, resource) in t.of_type("AWS::RDS::DBProxy") {
        if !exists(t, resource) {
            continue;
        }
        for group in resource["Properties"]["VpcSecurityGroupIds"]
            .as_array()
            .ok_or("proxy security groups")?
        {
            readers.push((proxy.clone(), referenced(group).ok_or("a !Ref")?.to_owned()));
        }
    }
    for (rotation, group) in rotation_groups(t)? {
        readers.push((rotation, group));
    }
    for (service, resource) in t.of_type("AWS::ECS::Service") {
        for group in
            resource["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]
                .as_array()
                .ok_or("the ECS service's security groups")?
        {
            readers.push((
                service.clone(),
                referenced(group).ok_or("a !Ref")?.to_owned(),
            ));
        }
    }
    ensure!(readers.len() >= 2, "found the functions and the proxy");
    for (who, group) in readers {
        ensure!(
            admitted.contains(&group),
            "{endpoint} admits HTTPS only from {admitted:?}, not from {group} ({who}): it could not read its secret"
        );
    }
    Ok(())
}

/// The security group of each hosted rotation function, by its rotation schedule.
fn rotation_groups(t: &Template) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (name, schedule) in t.of_type("AWS::SecretsManager::RotationSchedule") {
        if !exists(t, schedule) {
            continue;
        }
        let hosted = &schedule["Properties"]["HostedRotationLambda"];
        let group = referenced(&hosted["VpcSecurityGroupIds"])
            .ok_or_else(|| format!("{name}: VpcSecurityGroupIds is a !Ref"))?;
        out.push((name.clone(), group.to_owned()));
    }
    Ok(out)
}

// --- 9. the database secret rotates ------------------------------------------------------------

pub(super) fn check_database_secret_rotates(t: &Template) -> CheckResult {
    let transforms = match &t.root["Transform"] {
        Value::Array(items) => items.clone(),
        single => vec![single.clone()],
    };
    for secret in ["DatabaseSecret", "AppDatabaseSecret"] {
        check_secret_rotates(t, secret, &transforms)?;
    }
    Ok(())
}

fn check_secret_rotates(t: &Template, secret: &str, transforms: &[Value]) -> CheckResult {
    let (name, schedule) = t
        .of_type("AWS::SecretsManager::RotationSchedule")
        .find(|(_, r)| referenced(&r["Properties"]["SecretId"]) == Some(secret))
        .ok_or_else(|| format!("{secret} has no rotation schedule: its password never changes"))?;
    let p = &schedule["Properties"];
    ensure!(
        schedule["Condition"] == t.resource(secret)["Condition"],
        "{name}: exists exactly when the secret does"
    );
    let hosted = &p["HostedRotationLambda"];
    ensure!(
        hosted["RotationType"]
            .as_str()
            .is_some_and(|r| r.starts_with("PostgreSQL")),
        "{name}: a PostgreSQL rotation function"
    );
    ensure!(
        transforms.iter().any(|x| x
            .as_str()
            .is_some_and(|x| x.starts_with("AWS::SecretsManager-"))),
        "{name}: HostedRotationLambda needs the AWS::SecretsManager transform, the template has {transforms:?}"
    );
    let days: f64 = p["RotationRules"]["ScheduleExpression"]
        .as_str()
        .and_then(|e| {
            e.strip_prefix("rate(")?
                .strip_suffix(" days)")?
                .parse()
                .ok()
        })
        .ok_or_else(|| format!("{name}: ScheduleExpression rate(<n> days)"))?;
    ensure!(days <= 90.0, "{name}: rotates every {days} days");
    ensure!(
        p["RotateImmediatelyOnUpdate"] == json!(false),
        "{name}: no rotation during the deploy itself"
    );
    // It changes the password on the database itself: the database admits it.
    let database = t
        .of_type("AWS::RDS::DBInstance")
        .next()
        .ok_or("database")?
        .1;
    let mut admitted = BTreeSet::new();
    for group in database["Properties"]["VPCSecurityGroups"]
        .as_array()
        .ok_or("database security groups")?
    {
        admitted.extend(sources(t, referenced(group).ok_or("a !Ref")?, 5432.0));
    }
    for (_, group) in rotation_groups(t)? {
        ensure!(
            admitted.contains(&group),
            "the database admits PostgreSQL only from {admitted:?}, not from {group} (the rotation function)"
        );
    }
    Ok(())
}

// --- 4. a restored database keeps working API keys ---------------------------------------------

pub(super) fn check_pepper_survives_delete_and_restore(t: &Template) -> CheckResult {
    let secret = t.resource("ApiKeyPepperSecret");
    for policy in ["DeletionPolicy", "UpdateReplacePolicy"] {
        ensure!(
            secret[policy] == "Retain",
            "ApiKeyPepperSecret: {policy} must be Retain (the database snapshot keeps hashes made with it), is {}",
            secret[policy]
        );
    }
    // A stack restored from a snapshot reuses the old pepper: the functions that check keys
    // (the api, and live-connect at a WebSocket's $connect) read it, may read it.
    let old = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:old-pepper-AbCdEf";
    let restored = with_parameters(t, &[("ExistingApiKeyPepperSecretArn", old)]);
    for binary in ["api", "live-connect"] {
        let function = restored.function_for(binary);
        let variable = restored.environment(&function)["API_KEY_PEPPER_SECRET_ARN"].clone();
        ensure!(
            variable == old,
            "with ExistingApiKeyPepperSecretArn {binary} reads {variable}, not the old pepper"
        );
        let role = role_of(&restored, binary);
        let readable = iam_statements(&restored).iter().any(|(owner, s)| {
            owner == &role
                && actions_of(s)
                    .iter()
                    .any(|a| a == "secretsmanager:GetSecretValue")
                && match restored.resolve(&s["Resource"]) {
                    Value::Array(items) => items.contains(&json!(old)),
                    other => other == json!(old),
                }
        });
        ensure!(readable, "{role} may not read the old pepper");
    }
    ensure!(
        !exists(&restored, restored.resource("ApiKeyPepperSecret")),
        "a restored stack must not generate a new pepper"
    );
    Ok(())
}

// --- 5. the functions connect as the application role, not as the master user ---------------

pub(super) fn check_functions_connect_as_the_application_role(t: &Template) -> CheckResult {
    let master = json!({ "Ref": "DatabaseSecret" });
    let app = json!({ "Ref": "AppDatabaseSecret" });
    let migrator = t.function_for("migrator");
    for (binary, function) in t.functions_by_binary() {
        let variables = t.function(&function)["Environment"]["Variables"].clone();
        let secret = t.resolve(&variables["DATABASE_SECRET_ARN"]);
        let role = role_of(t, &binary);
        let reads = |arn: &Value| {
            iam_statements(t).iter().any(|(owner, s)| {
                owner == &role
                    && actions_of(s)
                        .iter()
                        .any(|a| a == "secretsmanager:GetSecretValue")
                    && match t.resolve(&s["Resource"]) {
                        Value::Array(items) => items.contains(arn),
                        other => other == *arn,
                    }
            })
        };
        if binary == "docs" {
            // It serves the reference page and connects to nothing.
            ensure!(
                secret.is_null() && !reads(&app) && !reads(&master),
                "{function}: the docs function has no business with the database"
            );
            continue;
        }
        if function == migrator {
            ensure!(
                secret == master,
                "{function}: the migrator connects as the owner"
            );
            ensure!(
                t.resolve(&variables["APP_DATABASE_SECRET_ARN"]) == app,
                "{function}: APP_DATABASE_SECRET_ARN (it creates the application role)"
            );
            ensure!(
                reads(&app),
                "{role} may not read the application role's secret"
            );
        } else {
            ensure!(
                secret == app,
                "{function} connects with {secret}, not as the application role: the master user can change the schema"
            );
            ensure!(!reads(&master), "{role} may read the master user's secret");
        }
    }
    // RDS Proxy must know the application role's credentials to let it in.
    let (proxy, resource) = t.of_type("AWS::RDS::DBProxy").next().ok_or("a proxy")?;
    ensure!(
        resource["Properties"]["Auth"]
            .as_array()
            .is_some_and(|auth| auth.iter().any(|a| a["SecretArn"] == app)),
        "{proxy}: no Auth entry for AppDatabaseSecret - the functions could not log in"
    );
    Ok(())
}

// --- 6. logs from the first invocation --------------------------------------------------------

pub(super) fn check_functions_log_into_the_stacks_groups(t: &Template) -> CheckResult {
    for (binary, function) in t.functions_by_binary() {
        let properties = t.function(&function);
        let group = referenced(&properties["LoggingConfig"]["LogGroup"]).ok_or_else(|| {
            format!(
                "{function}: no LoggingConfig.LogGroup - Lambda creates /aws/lambda/<name> itself at the first \
                 invocation (no role may), or races the stack's group; first logs are lost"
            )
        })?;
        let resource = t.resource(group);
        ensure!(
            resource["Type"] == "AWS::Logs::LogGroup",
            "{function}: {group} is not a log group"
        );
        ensure!(
            !resource["Properties"]["RetentionInDays"].is_null(),
            "{group}: no retention"
        );
        let name = resource["Properties"]["LogGroupName"]["Fn::Sub"]
            .as_str()
            .ok_or_else(|| format!("{group}: LogGroupName !Sub"))?;
        ensure!(
            !name.contains(&format!("${{{function}}}")) && resource["DependsOn"].is_null(),
            "{group}: named after {function}, so it is created after the function"
        );
        let expected = format!("/aws/lambda/${{AWS::StackName}}-{binary}");
        ensure!(
            name == expected,
            "{group}: name {name}, expected {expected} (the function's name, which its role may write to)"
        );
        let role = role_of(t, &binary);
        let writable = iam_statements(t).iter().any(|(owner, s)| {
            owner == &role
                && actions_of(s).iter().any(|a| a == "logs:PutLogEvents")
                && s["Resource"]["Fn::Sub"]
                    .as_str()
                    .is_some_and(|r| r.ends_with(&format!("log-group:{name}:*")))
        });
        ensure!(writable, "{role} may not write to {name}");
    }
    Ok(())
}

// --- 7. https only to the exchange ------------------------------------------------------------

pub(super) fn check_exchange_url_is_https_only(t: &Template) -> CheckResult {
    let parameter = &t.root["Parameters"]["ExchangeBaseUrl"];
    let pattern = parameter["AllowedPattern"]
        .as_str()
        .ok_or("ExchangeBaseUrl has no AllowedPattern")?;
    // CloudFormation matches the pattern against the whole value.
    let regex = regex_lite::Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| format!("ExchangeBaseUrl pattern {pattern}: {e}"))?;
    for good in [
        "https://api.exchange.example/v1",
        "https://exchange.example",
        "https://10.0.0.5:8443/api",
    ] {
        ensure!(regex.is_match(good), "ExchangeBaseUrl refuses {good}");
    }
    for bad in [
        "http://api.exchange.example/v1",
        "HTTP://api.exchange.example",
        "ftp://api.exchange.example",
        "https://",
        "https:// api.example",
        "api.exchange.example",
    ] {
        ensure!(
            !regex.is_match(bad),
            "ExchangeBaseUrl accepts {bad}: the functions' egress allows only 443, and http sends the key in clear"
        );
    }
    Ok(())
}

// --- 8. major upgrades and one NAT gateway per zone --------------------------------------------

pub(super) fn check_offered_major_versions_can_be_upgraded_to(t: &Template) -> CheckResult {
    let majors = t.root["Parameters"]["DatabaseEngineMajorVersion"]["AllowedValues"]
        .as_array()
        .map_or(0, Vec::len);
    for (name, database) in t.of_type("AWS::RDS::DBInstance") {
        let p = &database["Properties"];
        ensure!(
            p["EngineVersion"] == json!({ "Ref": "DatabaseEngineMajorVersion" }),
            "{name}: EngineVersion is the parameter"
        );
        if majors > 1 {
            ensure!(
                is_true(&p["AllowMajorVersionUpgrade"]),
                "{name}: DatabaseEngineMajorVersion offers {majors} majors, but without AllowMajorVersionUpgrade RDS refuses the change"
            );
        }
        let group = referenced(&p["DBParameterGroupName"]).ok_or("parameter group")?;
        ensure!(
            t.resource(group)["Properties"]["Family"]["Fn::Sub"]
                .as_str()
                .is_some_and(|f| f.contains("${DatabaseEngineMajorVersion}")),
            "{group}: Family follows the major version"
        );
    }
    Ok(())
}

/// For each private subnet the stack creates: the availability zone of the NAT gateway its
/// default route goes to, or `None` when it has no route out.
fn nat_zone_per_private_subnet(
    t: &Template,
) -> Result<Vec<(String, Value, Option<Value>)>, String> {
    let mut out = Vec::new();
    for (subnet, resource) in t.of_type("AWS::EC2::Subnet") {
        if !exists(t, resource) || !subnet.starts_with("Private") {
            continue;
        }
        let zone = resource["Properties"]["AvailabilityZone"].clone();
        let table = t
            .of_type("AWS::EC2::SubnetRouteTableAssociation")
            .filter(|(_, a)| exists(t, a))
            .find(|(_, a)| referenced(&a["Properties"]["SubnetId"]) == Some(subnet.as_str()))
            .and_then(|(_, a)| {
                referenced(&t.resolve(&a["Properties"]["RouteTableId"])).map(str::to_owned)
            })
            .ok_or_else(|| format!("{subnet}: no route table"))?;
        let nat = t
            .of_type("AWS::EC2::Route")
            .filter(|(_, r)| exists(t, r))
            .find(|(_, r)| {
                referenced(&r["Properties"]["RouteTableId"]) == Some(table.as_str())
                    && r["Properties"]["DestinationCidrBlock"] == "0.0.0.0/0"
            })
            .and_then(|(_, r)| referenced(&r["Properties"]["NatGatewayId"]).map(str::to_owned));
        let nat_zone = match nat {
            None => None,
            Some(nat) => {
                let public = referenced(&t.resource(&nat)["Properties"]["SubnetId"])
                    .ok_or_else(|| format!("{nat}: SubnetId"))?;
                Some(t.resource(public)["Properties"]["AvailabilityZone"].clone())
            }
        };
        out.push((subnet.clone(), zone, nat_zone));
    }
    Ok(out)
}

pub(super) fn check_nat_gateway_per_zone_is_offered(t: &Template) -> CheckResult {
    ensure!(
        t.root["Parameters"]["NatGatewayPerZone"]["AllowedValues"] == json!(["true", "false"]),
        "NatGatewayPerZone: a true/false parameter"
    );
    let per_zone = with_parameters(t, &[("NatGatewayPerZone", "true")]);
    let subnets = nat_zone_per_private_subnet(&per_zone)?;
    ensure!(subnets.len() >= 2, "two private subnets");
    for (subnet, zone, nat_zone) in &subnets {
        ensure!(
            nat_zone.as_ref() == Some(zone),
            "NatGatewayPerZone=true: {subnet} (zone {zone}) routes through a NAT gateway in {nat_zone:?}; losing that zone cuts it off from the exchange"
        );
    }
    // The default: one NAT gateway, and still a route out for every subnet.
    for (subnet, _, nat_zone) in nat_zone_per_private_subnet(t)? {
        ensure!(nat_zone.is_some(), "{subnet}: no route to the exchange");
    }
    // The S3 gateway endpoint is in every private route table.
    let (_, s3) = per_zone
        .of_type("AWS::EC2::VPCEndpoint")
        .find(|(_, e)| e["Properties"]["VpcEndpointType"] == "Gateway")
        .ok_or("S3 gateway endpoint")?;
    let tables = per_zone.resolve(&s3["Properties"]["RouteTableIds"]);
    for (name, table) in per_zone.of_type("AWS::EC2::RouteTable") {
        if exists(&per_zone, table) && name.starts_with("Private") {
            ensure!(
                tables
                    .as_array()
                    .is_some_and(|t| t.contains(&json!({ "Ref": name }))),
                "S3 gateway endpoint misses {name} (custom resource answers would hang)"
            );
        }
    }
    Ok(())
}

// --- 10. the alert topic is encrypted, and the alarms can still publish -------------------------

pub(super) fn check_alert_topic_is_encrypted_for_every_publisher(t: &Template) -> CheckResult {
    let topic = t.alert_topic();
    let key = referenced(&t.resource(&topic)["Properties"]["KmsMasterKeyId"])
        .ok_or_else(|| format!("{topic}: not encrypted with a key of the stack (KmsMasterKeyId)"))?
        .to_owned();
    let key_resource = t.resource(&key);
    ensure!(key_resource["Type"] == "AWS::KMS::Key", "{key}: a KMS key");
    ensure!(
        is_true(&key_resource["Properties"]["EnableKeyRotation"]),
        "{key}: rotation"
    );
    let statements = key_resource["Properties"]["KeyPolicy"]["Statement"]
        .as_array()
        .ok_or("key policy statements")?;
    let cloudwatch = statements.iter().any(|s| {
        s["Effect"] == "Allow"
            && s["Principal"]["Service"] == "cloudwatch.amazonaws.com"
            && ["kms:Decrypt", "kms:GenerateDataKey*"]
                .iter()
                .all(|a| actions_of(s).iter().any(|x| x == a))
    });
    ensure!(
        cloudwatch,
        "{key}: the key policy does not let CloudWatch (the alarms) use it; alarm notifications would be dropped"
    );
    // Every role that may publish to the topic may also use the key.
    let key_arn = json!({ "Fn::GetAtt": [key, "Arn"] });
    let statements = iam_statements(t);
    let topic_ref = json!({ "Ref": topic });
    let publishers: BTreeSet<&String> = statements
        .iter()
        .filter(|(_, s)| {
            actions_of(s).iter().any(|a| a == "sns:Publish") && s["Resource"] == topic_ref
        })
        .map(|(owner, _)| owner)
        .collect();
    ensure!(publishers.len() >= 2, "the alerter and the sweeper publish");
    for role in publishers {
        for action in ["kms:GenerateDataKey", "kms:Decrypt"] {
            ensure!(
                statements.iter().any(|(owner, s)| owner == role
                    && actions_of(s).iter().any(|a| a == action)
                    && s["Resource"] == key_arn),
                "{role} publishes to {topic} but may not {action} with {key}: every publish would fail"
            );
        }
    }
    Ok(())
}

/// Placements per second the placer can make at most: instances x records in flight per
/// instance / seconds per placement (the exchange's ~0.5 s).
pub(super) fn placer_capacity_per_second(t: &Template) -> f64 {
    let placer = t.function_for("placer");
    let instances = t.number(&t.sqs_event(&placer)["ScalingConfig"]["MaximumConcurrency"]);
    let in_flight: f64 = t.environment(&placer)["PLACER_CONCURRENCY"]
        .parse()
        .expect("PLACER_CONCURRENCY");
    instances * in_flight / 0.5
}

pub(super) fn check_backlog_alarm_fires_before_market_orders_expire(t: &Template) -> CheckResult {
    let (name, alarm) = alarms(t)
        .into_iter()
        .find(|(_, a)| {
            a["MetricName"] == "ApproximateAgeOfOldestMessage" && a["Namespace"] == "AWS/SQS"
        })
        .ok_or("no alarm on the orders queue's oldest message")?;
    let fires_after = t.number(&alarm["Threshold"])
        + t.number(&alarm["EvaluationPeriods"]) * t.number(&alarm["Period"]);
    let ttl = t.number(&json!({ "Ref": "MarketOrderTtlSeconds" }));
    ensure!(
        fires_after <= ttl,
        "{name} fires {fires_after}s into a backlog, after market orders (MarketOrderTtlSeconds {ttl}s) in it have expired"
    );
    Ok(())
}

/// The capacity lines of docs/DEPLOY.md, as the template's defaults imply them.
fn capacity_lines(t: &Template) -> Vec<String> {
    let api = t.number(&json!({ "Ref": "ApiThrottlingRateLimit" }));
    let placer = placer_capacity_per_second(t);
    let placer_instances = t.number(&json!({ "Ref": "PlacerMaxConcurrency" }));
    let in_flight = &t.environment(&t.function_for("placer"))["PLACER_CONCURRENCY"];
    let sweeper = t.environment(&t.function_for("sweeper"))["SWEEP_BATCH_SIZE"]
        .parse::<f64>()
        .expect("SWEEP_BATCH_SIZE")
        / sweep_interval_seconds(t);
    vec![
        format!("| HTTP API (`ApiThrottlingRateLimit`) | {api} requests/s |"),
        format!(
            "| placer (`PlacerMaxConcurrency` {placer_instances} × `PLACER_CONCURRENCY` {in_flight} ÷ 0.5 s) | {placer} placements/s |"
        ),
        format!(
            "| sweeper (`SWEEP_BATCH_SIZE` per run, one run a minute) | {sweeper:.1} orders/s |"
        ),
    ]
}

pub(super) fn check_deploy_guide_capacity(t: &Template) -> CheckResult {
    let guide = std::fs::read_to_string(format!("{WORKSPACE}/docs/DEPLOY.md"))
        .map_err(|e| format!("docs/DEPLOY.md: {e}"))?;
    for line in capacity_lines(t) {
        ensure!(
            guide.contains(&line),
            "docs/DEPLOY.md, \"Capacity\": expected the line\n{line}"
        );
    }
    Ok(())
}

// --- the tests --------------------------------------------------------------------------------

#[test]
fn rds_proxy_and_functions_reach_secrets_manager_through_the_endpoint() {
    check_secrets_endpoint_admits_everyone_who_reads_a_secret(t()).unwrap();
}

#[test]
fn the_database_secret_rotates_and_the_rotation_reaches_the_database() {
    check_database_secret_rotates(t()).unwrap();
}

#[test]
fn functions_connect_as_the_application_role_and_only_the_migrator_as_the_owner() {
    check_functions_connect_as_the_application_role(t()).unwrap();
}

#[test]
fn the_api_key_pepper_survives_stack_delete_and_restore() {
    check_pepper_survives_delete_and_restore(t()).unwrap();
}

#[test]
fn functions_log_into_the_stacks_groups_from_their_first_invocation() {
    check_functions_log_into_the_stacks_groups(t()).unwrap();
}

#[test]
fn the_exchange_is_reached_over_https_only() {
    check_exchange_url_is_https_only(t()).unwrap();
}

#[test]
fn every_offered_major_version_can_be_upgraded_to() {
    check_offered_major_versions_can_be_upgraded_to(t()).unwrap();
}

#[test]
fn a_nat_gateway_per_zone_is_offered() {
    check_nat_gateway_per_zone_is_offered(t()).unwrap();
}

#[test]
fn the_alert_topic_is_encrypted_and_every_publisher_can_use_its_key() {
    check_alert_topic_is_encrypted_for_every_publisher(t()).unwrap();
}

#[test]
fn a_placement_backlog_alarms_before_market_orders_expire_in_it() {
    check_backlog_alarm_fires_before_market_orders_expire(t()).unwrap();
}

#[test]
fn the_deploy_guide_shows_the_capacity_the_template_implies() {
    check_deploy_guide_capacity(t()).unwrap();
}

#[test]
fn every_checkov_skip_is_justified() {
    let mut skips = 0;
    for (name, resource) in t().resources() {
        for skip in resource["Metadata"]["checkov"]["skip"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let id = skip["id"].as_str().unwrap_or_default();
            assert!(id.starts_with("CKV"), "{name}: checkov skip without an id");
            let comment = skip["comment"].as_str().unwrap_or_default();
            assert!(
                comment.split_whitespace().count() >= 8,
                "{name}: checkov skip {id} needs a comment saying why"
            );
            skips += 1;
        }
    }
    assert!(skips > 0);
}

/// The fixture: the template as it was before the review (tests/fixtures/pre-review-template.yaml)
/// has all the template defects at once; every template check must fail on it.
#[test]
fn every_template_check_fails_on_the_template_as_it_was_before_the_review() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/pre-review-template.yaml"
    );
    let fixture = Template::parse(&std::fs::read_to_string(path).expect("the fixture"));
    let checks: [(&str, Check); 10] = [
        (
            "1",
            check_secrets_endpoint_admits_everyone_who_reads_a_secret,
        ),
        ("4", check_pepper_survives_delete_and_restore),
        ("5", check_functions_connect_as_the_application_role),
        ("6", check_functions_log_into_the_stacks_groups),
        ("7", check_exchange_url_is_https_only),
        ("8", check_offered_major_versions_can_be_upgraded_to),
        ("8", check_nat_gateway_per_zone_is_offered),
        ("9", check_database_secret_rotates),
        ("10", check_alert_topic_is_encrypted_for_every_publisher),
        ("10", check_backlog_alarm_fires_before_market_orders_expire),
    ];
    for (item, check) in checks {
        let verdict = check(&fixture);
        assert!(
            verdict.is_err(),
            "item {item}: a check passed the pre-review template"
        );
        eprintln!(
            "item {item}: fails on the fixture - {}",
            verdict.unwrap_err()
        );
    }
}

/// The canaries: each puts one reviewed defect back into a copy of the template; its check
/// must fail on the copy (and pass on the template).
#[test]
fn deploy_review_checks_catch_the_defects() {
    let text = std::fs::read_to_string(TEMPLATE_PATH).expect("infra/template.yaml");
    let mutations: Vec<Mutation> = vec![
        (
            "1: the Secrets Manager endpoint admits only the functions, not RDS Proxy",
            "      SourceSecurityGroupId: !Ref ProxySecurityGroup\n      Description: \"HTTPS from RDS Proxy (Secrets Manager)\"",
            "      SourceSecurityGroupId: !Ref FunctionSecurityGroup\n      Description: \"HTTPS from RDS Proxy (Secrets Manager)\"",
            check_secrets_endpoint_admits_everyone_who_reads_a_secret,
        ),
        (
            "1: the Secrets Manager endpoint does not admit the rotation function",
            "      SourceSecurityGroupId: !Ref RotationSecurityGroup\n      Description: \"HTTPS from the rotation function (Secrets Manager)\"",
            "      SourceSecurityGroupId: !Ref FunctionSecurityGroup\n      Description: \"HTTPS from the rotation function (Secrets Manager)\"",
            check_secrets_endpoint_admits_everyone_who_reads_a_secret,
        ),
        (
            "9: no rotation of the database secret",
            "  DatabaseSecretRotation:\n    Type: AWS::SecretsManager::RotationSchedule\n",
            "  DatabaseSecretRotation:\n    Type: AWS::SecretsManager::Secret\n",
            check_database_secret_rotates,
        ),
        (
            "9: the application role's password never rotates",
            "  AppDatabaseSecretRotation:\n    Type: AWS::SecretsManager::RotationSchedule\n",
            "  AppDatabaseSecretRotation:\n    Type: AWS::SecretsManager::Secret\n",
            check_database_secret_rotates,
        ),
        (
            "9: hosted rotation without the Secrets Manager transform",
            "Transform: [AWS::Serverless-2016-10-31, AWS::SecretsManager-2024-09-16]",
            "Transform: AWS::Serverless-2016-10-31",
            check_database_secret_rotates,
        ),
        (
            "9: the database does not admit the rotation function",
            "      SourceSecurityGroupId: !Ref RotationSecurityGroup\n      Description: PostgreSQL from the rotation function",
            "      SourceSecurityGroupId: !Ref ProxySecurityGroup\n      Description: PostgreSQL from the rotation function",
            check_database_secret_rotates,
        ),
        (
            "4: the pepper is deleted with the stack",
            "    Condition: CreatePepperSecret\n    DeletionPolicy: Retain\n    UpdateReplacePolicy: Retain\n",
            "    Condition: CreatePepperSecret\n",
            check_pepper_survives_delete_and_restore,
        ),
        (
            "4: a restored stack cannot reuse the old pepper",
            "          API_KEY_PEPPER_SECRET_ARN: !If [CreatePepperSecret, !Ref ApiKeyPepperSecret, !Ref ExistingApiKeyPepperSecretArn]\n          AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH",
            "          API_KEY_PEPPER_SECRET_ARN: !Ref ApiKeyPepperSecret\n          AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH",
            check_pepper_survives_delete_and_restore,
        ),
        (
            "5: every function connects as the master user",
            "        DATABASE_SECRET_ARN: !If [CreateDatabase, !Ref AppDatabaseSecret, !Ref ExistingDatabaseSecretArn]",
            "        DATABASE_SECRET_ARN: !If [CreateDatabase, !Ref DatabaseSecret, !Ref ExistingDatabaseSecretArn]",
            check_functions_connect_as_the_application_role,
        ),
        (
            "5: the sweeper may read the master user's secret",
            "-sweeper:*\"\n              - Effect: Allow\n                Action: secretsmanager:GetSecretValue\n                Resource: !If [CreateDatabase, !Ref AppDatabaseSecret, !Ref ExistingDatabaseSecretArn]",
            "-sweeper:*\"\n              - Effect: Allow\n                Action: secretsmanager:GetSecretValue\n                Resource: !If [CreateDatabase, !Ref DatabaseSecret, !Ref ExistingDatabaseSecretArn]",
            check_functions_connect_as_the_application_role,
        ),
        (
            "5: the proxy does not know the application role",
            "        - AuthScheme: SECRETS\n          SecretArn: !Ref AppDatabaseSecret\n",
            "        - AuthScheme: SECRETS\n          SecretArn: !Ref DatabaseSecret\n",
            check_functions_connect_as_the_application_role,
        ),
        (
            "6: the api logs where Lambda creates a group at its first invocation",
            "      LoggingConfig:\n        LogGroup: !Ref ApiLogGroup\n",
            "",
            check_functions_log_into_the_stacks_groups,
        ),
        (
            "6: the placer's group named after the function (created after it)",
            "LogGroupName: !Sub /aws/lambda/${AWS::StackName}-placer",
            "LogGroupName: !Sub /aws/lambda/${PlacerFunction}",
            check_functions_log_into_the_stacks_groups,
        ),
        (
            "7: ExchangeBaseUrl accepts http://",
            "AllowedPattern: \"^https://[^\\\\s/?#]+(/\\\\S*)?$\"",
            "AllowedPattern: \"^https?://.+\"",
            check_exchange_url_is_https_only,
        ),
        (
            "8: no AllowMajorVersionUpgrade",
            "      AllowMajorVersionUpgrade: true\n",
            "",
            check_offered_major_versions_can_be_upgraded_to,
        ),
        (
            "8: zone B's subnet routes through zone A's NAT gateway",
            "      NatGatewayId: !Ref NatGatewayB\n",
            "      NatGatewayId: !Ref NatGateway\n",
            check_nat_gateway_per_zone_is_offered,
        ),
        (
            "8: zone B's subnet keeps the shared route table",
            "      RouteTableId: !If [CreateNatPerZone, !Ref PrivateRouteTableB, !Ref PrivateRouteTable]",
            "      RouteTableId: !Ref PrivateRouteTable",
            check_nat_gateway_per_zone_is_offered,
        ),
        (
            "10: the alert topic unencrypted",
            "      KmsMasterKeyId: !Ref AlertTopicKey\n",
            "",
            check_alert_topic_is_encrypted_for_every_publisher,
        ),
        (
            "10: the key policy without CloudWatch",
            "            Principal: { Service: cloudwatch.amazonaws.com }",
            "            Principal: { Service: sns.amazonaws.com }",
            check_alert_topic_is_encrypted_for_every_publisher,
        ),
        (
            "10: the sweeper may not use the topic's key",
            "              - Sid: EncryptedAlertTopic # publishing to a KMS-encrypted topic\n                Effect: Allow\n                Action: [kms:GenerateDataKey, kms:Decrypt]\n                Resource: !GetAtt AlertTopicKey.Arn\n              - Sid: IncidentAlerts",
            "              - Sid: IncidentAlerts",
            check_alert_topic_is_encrypted_for_every_publisher,
        ),
        (
            "10: the backlog alarm fires after market orders expired",
            "  OrdersQueueAgeAlarmSeconds:\n    Type: Number\n    Default: 120\n",
            "  OrdersQueueAgeAlarmSeconds:\n    Type: Number\n    Default: 300\n",
            check_backlog_alarm_fires_before_market_orders_expire,
        ),
        (
            "10: the guide's capacity no longer matches the placer",
            "          PLACER_CONCURRENCY: \"10\"\n",
            "          PLACER_CONCURRENCY: \"20\"\n",
            check_deploy_guide_capacity,
        ),
    ];
    assert_canaries_caught(&text, mutations);
}
