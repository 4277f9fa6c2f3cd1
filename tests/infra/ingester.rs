//! The ingester in AWS (issue #15): an ECS service of one Fargate task (arm64) in the private
//! subnets, without a public address, reaching the database through RDS Proxy and its secrets
//! through the Secrets Manager endpoint, logging to the stack's group, with least-privilege
//! roles, created only once an image exists, and alarmed when it is not running. Each check has
//! a canary that breaks a copy of the template (`ingester_checks_catch_broken_templates`).
//!
//! The service exists only with an image (`IngesterImageUri`), so most checks look at the stack
//! a second deploy creates: the defaults plus an image and a feed URL (`with_ingester`).

use order_shared::config::IngesterConfig;

use super::deploy_review::{exists, sources, with_parameters};
use super::*;

/// The parameters of the deploy that creates the ingester (docs/DEPLOY.md, "The ingester").
pub(super) const WITH_INGESTER: [(&str, &str); 2] = [
    (
        "IngesterImageUri",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/orders-ingester:0123abc",
    ),
    ("ExecutionFeedUrl", "wss://api.exchange.example/v1/feed"),
];

pub(super) fn with_ingester(t: &Template) -> Template {
    with_parameters(t, &WITH_INGESTER)
}

pub(super) fn the_one<'a>(
    t: &'a Template,
    kind: &'a str,
) -> Result<(&'a String, &'a Value), String> {
    let mut found = t.of_type(kind);
    let first = found
        .next()
        .ok_or_else(|| format!("no {kind} in the template"))?;
    ensure!(found.next().is_none(), "more than one {kind}");
    Ok(first)
}

/// The ECS service whose task runs the container `container` (the ingester, the fan-out): the
/// one, in exactly one service.
pub(super) fn service_of<'a>(
    t: &'a Template,
    container: &str,
) -> Result<(&'a String, &'a Value), String> {
    let mut found = t.of_type("AWS::ECS::Service").filter(|(_, service)| {
        referenced_name(&service["Properties"]["TaskDefinition"]).is_some_and(|task| {
            t.resources().get(&task).is_some_and(|d| {
                d["Properties"]["ContainerDefinitions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["Name"] == container))
            })
        })
    });
    let first = found
        .next()
        .ok_or_else(|| format!("no ECS service runs the {container} container"))?;
    ensure!(
        found.next().is_none(),
        "more than one ECS service runs the {container} container"
    );
    Ok(first)
}

/// The ingester's ECS service.
pub(super) fn ingester_service(t: &Template) -> Result<(&String, &Value), String> {
    service_of(t, "ingester")
}

/// A service's task definition and its one container.
pub(super) fn task_of<'a>(
    t: &'a Template,
    container: &str,
) -> Result<(String, &'a Value, &'a Value), String> {
    let (service, resource) = service_of(t, container)?;
    let task = referenced_name(&resource["Properties"]["TaskDefinition"])
        .ok_or(format!("{service}: TaskDefinition is a !Ref"))?;
    let definition = t.resource(&task);
    ensure!(
        definition["Type"] == "AWS::ECS::TaskDefinition",
        "{task} is a task definition"
    );
    let containers = definition["Properties"]["ContainerDefinitions"]
        .as_array()
        .ok_or(format!("{task}: ContainerDefinitions"))?;
    ensure!(
        containers.len() == 1,
        "{task}: one container, the {container}"
    );
    Ok((task, definition, &containers[0]))
}

/// The service's task definition and its one container.
fn ingester_task(t: &Template) -> Result<(String, &Value, &Value), String> {
    task_of(t, "ingester")
}

pub(super) fn referenced_name(value: &Value) -> Option<String> {
    value["Ref"].as_str().map(str::to_owned)
}

/// A container's environment as the process sees it (as `Template::environment` for a
/// function: deploy-time values become a non-empty placeholder).
pub(super) fn container_environment(
    t: &Template,
    container_name: &str,
) -> Result<BTreeMap<String, String>, String> {
    let (task, _, container) = task_of(t, container_name)?;
    let mut out = BTreeMap::new();
    for variable in container["Environment"]
        .as_array()
        .ok_or(format!("{task}: the container has no Environment"))?
    {
        let name = variable["Name"].as_str().ok_or("a variable's Name")?;
        let text = t.process_text(&variable["Value"]);
        ensure!(
            out.insert(name.to_owned(), text).is_none(),
            "{task}: {name} set twice"
        );
    }
    Ok(out)
}

/// The ingester container's environment.
pub(super) fn ingester_environment(t: &Template) -> Result<BTreeMap<String, String>, String> {
    container_environment(t, "ingester")
}

/// The ingester's settings as its own start-up code reads them from the template.
pub(super) fn ingester_config(t: &Template) -> Result<IngesterConfig, String> {
    let env = env_lookup(ingester_environment(&with_ingester(t))?);
    IngesterConfig::from_env(&env).map_err(|e| format!("ingester: {e}"))
}

/// Tasks of the ingester's service at once, at most.
pub(super) fn ingester_most_tasks(t: &Template) -> Result<u64, String> {
    most_tasks(t, "ingester")
}

/// Tasks of a service at once, at most: desired count x MaximumPercent (a deployment starts
/// the new tasks up to it before it stops the old ones).
pub(super) fn most_tasks(t: &Template, container: &str) -> Result<u64, String> {
    let (service, resource) = service_of(t, container)?;
    let p = &resource["Properties"];
    let desired = t.number(&p["DesiredCount"]);
    let maximum = &p["DeploymentConfiguration"]["MaximumPercent"];
    ensure!(
        !maximum.is_null(),
        "{service}: DeploymentConfiguration.MaximumPercent (ECS's default, 200 %, runs two tasks in a deployment)"
    );
    Ok((desired * t.number(maximum) / 100.0).ceil() as u64)
}

// --- the checks ---------------------------------------------------------------------------------

/// No image, no service (the first deploy); with one, one Fargate task, never two, in the
/// functions' private subnets without a public address, rolled back when it cannot start.
pub(super) fn check_ingester_is_one_private_task(t: &Template) -> CheckResult {
    let (service, resource) = ingester_service(t)?;
    let (task, definition, _) = ingester_task(t)?;
    for (name, r) in [(service, resource), (&task, definition)] {
        let condition = r["Condition"]
            .as_str()
            .ok_or(format!("{name}: needs a Condition on IngesterImageUri"))?;
        ensure!(
            !t.condition(condition),
            "{name}: exists without an image (first deploy: the repository is still empty)"
        );
        ensure!(
            with_ingester(t).condition(condition),
            "{name}: missing although IngesterImageUri is set"
        );
    }
    let with = with_ingester(t);
    let p = &resource["Properties"];
    ensure!(
        p["LaunchType"] == "FARGATE",
        "{service}: LaunchType FARGATE"
    );
    ensure!(
        with.number(&p["DesiredCount"]) == 1.0,
        "{service}: DesiredCount 1 (one active ingester)"
    );
    let most = ingester_most_tasks(&with)?;
    ensure!(
        most == 1,
        "{service}: up to {most} tasks at once in a deployment; one holds the lease, the others \
         only wait and hold database connections the budget does not count"
    );
    let deployment = &p["DeploymentConfiguration"];
    ensure!(
        is_true(&deployment["DeploymentCircuitBreaker"]["Enable"])
            && is_true(&deployment["DeploymentCircuitBreaker"]["Rollback"]),
        "{service}: a deployment whose task cannot start must roll back (circuit breaker)"
    );
    let network = &p["NetworkConfiguration"]["AwsvpcConfiguration"];
    ensure!(
        network["AssignPublicIp"] == "DISABLED",
        "{service}: AssignPublicIp must be DISABLED (it reaches the internet through the NAT gateway)"
    );
    let functions = with.resolve(&t.root["Globals"]["Function"]["VpcConfig"]["SubnetIds"]);
    ensure!(
        with.resolve(&network["Subnets"]) == functions,
        "{service}: Subnets must be the functions' private subnets {functions}, not {}",
        with.resolve(&network["Subnets"])
    );
    let existing = with_parameters(
        &with,
        &[
            ("ExistingVpcId", "vpc-0123"),
            ("ExistingPrivateSubnetIds", "subnet-a,subnet-b"),
        ],
    );
    ensure!(
        existing.resolve(&network["Subnets"])
            == existing.resolve(&t.root["Globals"]["Function"]["VpcConfig"]["SubnetIds"]),
        "{service}: in an existing VPC, the ExistingPrivateSubnetIds"
    );
    let d = &definition["Properties"];
    ensure!(
        d["RequiresCompatibilities"] == json!(["FARGATE"]) && d["NetworkMode"] == "awsvpc",
        "{task}: a Fargate task (awsvpc)"
    );
    ensure!(
        d["RuntimePlatform"]["CpuArchitecture"] == "ARM64"
            && d["RuntimePlatform"]["OperatingSystemFamily"] == "LINUX",
        "{task}: Linux on ARM64 (Graviton), what scripts/build-ingester-image.sh builds"
    );
    ensure!(
        !d["Cpu"].is_null() && !d["Memory"].is_null(),
        "{task}: Cpu and Memory"
    );
    Ok(())
}

/// RDS Proxy admits the ingester's security groups on 5432 (the Secrets Manager endpoint on 443:
/// `check_secrets_endpoint_admits_everyone_who_reads_a_secret`), and it connects to the proxy.
pub(super) fn check_ingester_reaches_the_proxy(t: &Template) -> CheckResult {
    let (service, resource) = ingester_service(t)?;
    let (proxy, proxy_resource) = the_one(t, "AWS::RDS::DBProxy")?;
    let mut admitted = BTreeSet::new();
    for group in proxy_resource["Properties"]["VpcSecurityGroupIds"]
        .as_array()
        .ok_or("proxy security groups")?
    {
        let group = referenced_name(group).ok_or("a proxy security group is a !Ref")?;
        admitted.extend(sources(t, &group, 5432.0));
    }
    for group in
        resource["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]
            .as_array()
            .ok_or(format!("{service}: SecurityGroups"))?
    {
        let group = referenced_name(group).ok_or("a !Ref")?;
        ensure!(
            admitted.contains(&group),
            "{proxy} admits PostgreSQL only from {admitted:?}, not from {group} ({service})"
        );
    }
    let env = ingester_environment(&with_ingester(t))?;
    ensure!(
        env["DATABASE_HOST"]
            == format!(
                "<deploy-time {}>",
                json!({ "Fn::GetAtt": [proxy, "Endpoint"] })
            ),
        "ingester: DATABASE_HOST must be the proxy's endpoint, not {}",
        env["DATABASE_HOST"]
    );
    Ok(())
}

/// Its settings pass its own start-up validation; the application role through the proxy with
/// verified TLS; a wss:// feed, required with an image.
pub(super) fn check_ingester_environment(t: &Template) -> CheckResult {
    let config = ingester_config(t)?;
    let env = ingester_environment(&with_ingester(t))?;
    ensure!(
        env.get("DATABASE_SECRET_ARN").map(String::as_str)
            == Some(r#"<deploy-time {"Ref":"AppDatabaseSecret"}>"#),
        "ingester: DATABASE_SECRET_ARN must be the application role's secret (DML only), not {:?}",
        env.get("DATABASE_SECRET_ARN")
    );
    ensure!(
        env.get("DATABASE_TLS").map(String::as_str) == Some("verify-full"),
        "ingester: DATABASE_TLS verify-full"
    );
    ensure!(
        !env.contains_key("DATABASE_URL"),
        "ingester: DATABASE_URL is for local runs"
    );
    // The exchange's key from its secret, read by the ingester itself (as the placer does).
    let (read, _) = variables_read("ingester", env.clone());
    ensure!(
        read.contains("EXCHANGE_API_KEY_SECRET_ARN")
            && env.get("EXCHANGE_API_KEY_SECRET_ARN").map(String::as_str)
                == Some(r#"<deploy-time {"Ref":"ExchangeApiKeySecret"}>"#),
        "ingester: EXCHANGE_API_KEY_SECRET_ARN must be the exchange key's secret, and read at start \
         (set: {:?})",
        env.get("EXCHANGE_API_KEY_SECRET_ARN")
    );
    ensure!(
        config.feed.url.starts_with("wss://"),
        "ingester: the feed over TLS"
    );
    let pattern = t.root["Parameters"]["ExecutionFeedUrl"]["AllowedPattern"]
        .as_str()
        .ok_or("ExecutionFeedUrl needs an AllowedPattern (wss:// only)")?;
    ensure!(
        pattern.contains("^wss://") && !pattern.contains("wss?"),
        "ExecutionFeedUrl must refuse ws:// (the key in clear; egress is 443 only): {pattern}"
    );
    let rule = &t.root["Rules"]["IngesterNeedsFeedUrl"];
    ensure!(
        rule["RuleCondition"]
            .to_string()
            .contains("IngesterImageUri")
            && rule["Assertions"].to_string().contains("ExecutionFeedUrl"),
        "a Rule must refuse IngesterImageUri without ExecutionFeedUrl"
    );
    Ok(())
}

/// awslogs into the stack's group, which has the functions' retention; the execution role may
/// write that group and nothing else.
pub(super) fn check_ingester_logs(t: &Template) -> CheckResult {
    let (task, _, container) = ingester_task(t)?;
    let logs = &container["LogConfiguration"];
    ensure!(logs["LogDriver"] == "awslogs", "{task}: awslogs");
    let group = referenced_name(&logs["Options"]["awslogs-group"]).ok_or(format!(
        "{task}: awslogs-group is a !Ref to the stack's group"
    ))?;
    let resource = t.resource(&group);
    ensure!(
        resource["Type"] == "AWS::Logs::LogGroup",
        "{group}: a log group"
    );
    ensure!(
        resource["Properties"]["RetentionInDays"] == json!({ "Ref": "LogRetentionDays" }),
        "{group}: RetentionInDays must be LogRetentionDays, like the functions'"
    );
    ensure!(
        resource["Properties"]["LogGroupName"]
            .to_string()
            .contains("${AWS::StackName}"),
        "{group}: named from the stack"
    );
    Ok(())
}

pub(super) fn role_statements(t: &Template, role: &str) -> Vec<Value> {
    iam_statements(t)
        .into_iter()
        .filter(|(owner, _)| owner == role)
        .map(|(_, s)| s)
        .collect()
}

/// The task role reads the application role's and the exchange's secrets, nothing else; the
/// execution role pulls from this repository and writes this log group, nothing else.
pub(super) fn check_ingester_roles_are_least_privilege(t: &Template) -> CheckResult {
    let (task, definition, container) = ingester_task(t)?;
    let role_of = |key: &str| -> Result<String, String> {
        let get_att = definition["Properties"][key]["Fn::GetAtt"]
            .as_array()
            .ok_or(format!("{task}: {key} is !GetAtt <role>.Arn"))?;
        Ok(get_att[0].as_str().unwrap_or_default().to_owned())
    };
    let (task_role, execution_role) = (role_of("TaskRoleArn")?, role_of("ExecutionRoleArn")?);
    ensure!(
        task_role != execution_role,
        "{task}: the task's role and ECS's execution role differ"
    );
    let readable = BTreeSet::from([
        json!({ "Ref": "AppDatabaseSecret" }).to_string(),
        json!({ "Ref": "ExchangeApiKeySecret" }).to_string(),
    ]);
    let statements = role_statements(t, &task_role);
    ensure!(!statements.is_empty(), "{task_role}: no statement");
    let mut read = BTreeSet::new();
    for statement in &statements {
        ensure!(
            actions_of(statement) == ["secretsmanager:GetSecretValue"],
            "{task_role} may only read its secrets: {statement}"
        );
        let resources = match t.resolve(&statement["Resource"]) {
            Value::Array(items) => items,
            other => vec![other],
        };
        for resource in resources {
            let text = resource.to_string();
            ensure!(
                readable.contains(&text),
                "{task_role} may read {text}; only {readable:?}"
            );
            read.insert(text);
        }
    }
    ensure!(
        read == readable,
        "{task_role} must read {readable:?}, reads {read:?}"
    );
    let group = referenced_name(&container["LogConfiguration"]["Options"]["awslogs-group"])
        .unwrap_or_default();
    let repository = the_one(t, "AWS::ECR::Repository")?.0.clone();
    for statement in role_statements(t, &execution_role) {
        let resource = t.resolve(&statement["Resource"]).to_string();
        for action in actions_of(&statement) {
            let scoped_to = match action.as_str() {
                "ecr:GetAuthorizationToken" => "\"*\"".to_owned(),
                "ecr:BatchGetImage"
                | "ecr:GetDownloadUrlForLayer"
                | "ecr:BatchCheckLayerAvailability" => {
                    json!({ "Fn::GetAtt": [repository, "Arn"] }).to_string()
                }
                "logs:CreateLogStream" | "logs:PutLogEvents" => {
                    json!({ "Fn::GetAtt": [group, "Arn"] }).to_string()
                }
                other => {
                    return Err(format!(
                        "{execution_role} may {other}: not needed to start the task"
                    ));
                }
            };
            ensure!(
                resource == scoped_to,
                "{execution_role}: {action} on {resource}, expected {scoped_to}"
            );
        }
    }
    Ok(())
}

/// Alarms: no running task for minutes (no data counts: ECS publishes nothing without a task),
/// and errors logged by the ingester; both to the alert topic.
pub(super) fn check_ingester_alarms(t: &Template) -> CheckResult {
    let (service, _) = ingester_service(t)?;
    let (cluster, _) = the_one(t, "AWS::ECS::Cluster")?;
    let service_name = json!({ "Fn::GetAtt": [service, "Name"] });
    let (name, alarm) = alarms(t)
        .into_iter()
        .find(|(_, p)| {
            p["Namespace"] == "AWS/ECS"
                && dimension_is(p, "ServiceName", &service_name)
                && dimension_is(p, "ClusterName", &json!({ "Ref": cluster }))
        })
        .ok_or(format!("no alarm on {service}'s AWS/ECS metrics"))?;
    let p = alarm;
    ensure!(
        p["TreatMissingData"] == "breaching",
        "{name}: no data means no running task: TreatMissingData breaching"
    );
    ensure!(
        p["ComparisonOperator"] == "LessThanThreshold" && t.number(&p["Threshold"]) == 1.0,
        "{name}: fires below one running task"
    );
    ensure!(
        p["Statistic"] == "SampleCount",
        "{name}: SampleCount (data points of running tasks), not a CPU level"
    );
    ensure!(
        t.number(&p["Period"]) * t.number(&p["EvaluationPeriods"]) <= 600.0,
        "{name}: within 10 minutes"
    );
    let topic = json!({ "Ref": t.alert_topic() });
    for actions in ["AlarmActions", "OKActions"] {
        ensure!(
            p[actions].as_array().is_some_and(|a| a.contains(&topic)),
            "{name}: {actions} must notify {topic}"
        );
    }
    ensure!(
        resource_condition(t, name) == resource_condition(t, service),
        "{name}: exists exactly when {service} does"
    );
    let errors = alarms(t)
        .into_iter()
        .find(|(_, p)| p["MetricName"] == "ingester_errors")
        .ok_or("no alarm on the ingester's logged errors (ingester_errors)")?;
    check_alarm_notifies(errors.0, errors.1, t)?;
    let filter = t
        .of_type("AWS::Logs::MetricFilter")
        .find(|(_, f)| {
            f["Properties"]["MetricTransformations"][0]["MetricName"] == "ingester_errors"
        })
        .ok_or("no metric filter makes ingester_errors")?;
    ensure!(
        filter.1["Properties"]["FilterPattern"]
            .as_str()
            .is_some_and(|p| p.contains("$.level = \"ERROR\"")),
        "{}: counts the JSON log lines at level ERROR",
        filter.0
    );
    Ok(())
}

/// The lag metric is made from the ingester's own log line: the filter must match the message
/// the code logs and read the field it sets, or the alarm silently never sees data.
pub(super) fn check_ingester_lag_alarm(t: &Template) -> CheckResult {
    let code = std::fs::read_to_string(
        std::path::Path::new(WORKSPACE).join("shared/src/handlers/ingester.rs"),
    )
    .expect("shared/src/handlers/ingester.rs");
    let (filter, properties) = t
        .of_type("AWS::Logs::MetricFilter")
        .find(|(_, f)| {
            f["Properties"]["MetricTransformations"][0]["MetricName"] == "ingester_lag_ms"
        })
        .map(|(name, f)| (name, &f["Properties"]))
        .ok_or("no metric filter makes ingester_lag_ms")?;
    let pattern = properties["FilterPattern"].as_str().unwrap_or_default();
    let message = pattern
        .strip_prefix("{ $.message = \"")
        .and_then(|rest| rest.strip_suffix("\" }"))
        .ok_or(format!(
            "{filter}: matches one message exactly, is {pattern}"
        ))?;
    ensure!(
        code.contains(&format!("\"{message}\"")),
        "{filter}: the ingester logs no line \"{message}\""
    );
    let transformation = &properties["MetricTransformations"][0];
    ensure!(
        transformation["MetricValue"] == "$.lag_ms" && code.contains("lag_ms = "),
        "{filter}: reads $.lag_ms, the field the ingester's line sets"
    );
    ensure!(
        properties["LogGroupName"] == json!({ "Ref": "IngesterLogGroup" }),
        "{filter}: on the ingester's log group"
    );
    let (name, alarm) = alarms(t)
        .into_iter()
        .find(|(_, p)| p["MetricName"] == "ingester_lag_ms")
        .ok_or("no alarm on ingester_lag_ms")?;
    ensure!(
        alarm["Namespace"] == transformation["MetricNamespace"]
            && alarm["Statistic"] == "Maximum"
            && alarm["TreatMissingData"] == "notBreaching",
        "{name}: the filter's namespace, the worst lag, and no data (no reports) is no lag"
    );
    ensure!(
        resource_condition(t, name) == resource_condition(t, "IngesterService"),
        "{name}: exists exactly when the ingester does"
    );
    check_alarm_notifies(name, alarm, t)
}

pub(super) fn resource_condition(t: &Template, name: &str) -> Value {
    t.resource(name)["Condition"].clone()
}

/// The image repository: immutable tags (a tag is a rollback target), scanned on push, old images
/// expire; the image parameter accepts what the build script prints.
pub(super) fn check_ingester_repository(t: &Template) -> CheckResult {
    let (repository, resource) = the_one(t, "AWS::ECR::Repository")?;
    let p = &resource["Properties"];
    ensure!(
        p["ImageTagMutability"] == "IMMUTABLE",
        "{repository}: immutable tags"
    );
    ensure!(
        is_true(&p["ImageScanningConfiguration"]["ScanOnPush"]),
        "{repository}: scan on push"
    );
    let policy: Value = serde_json::from_str(
        p["LifecyclePolicy"]["LifecyclePolicyText"]
            .as_str()
            .ok_or(format!("{repository}: a lifecycle policy"))?,
    )
    .map_err(|e| format!("{repository}: lifecycle policy JSON: {e}"))?;
    ensure!(
        policy["rules"].as_array().is_some_and(|r| !r.is_empty()),
        "{repository}: lifecycle rules"
    );
    ensure!(
        exists(t, resource),
        "{repository} exists on the first deploy (the image is pushed into it before the second)"
    );
    Ok(())
}

// --- the tests --------------------------------------------------------------------------------

#[test]
fn the_ingester_is_one_fargate_task_in_the_private_subnets_created_once_there_is_an_image() {
    check_ingester_is_one_private_task(t()).unwrap();
}

#[test]
fn the_ingester_reaches_the_database_through_the_proxy() {
    check_ingester_reaches_the_proxy(t()).unwrap();
}

#[test]
fn the_ingester_environment_passes_its_start_up_validation() {
    check_ingester_environment(t()).unwrap();
}

#[test]
fn the_ingester_logs_into_the_stacks_group_with_retention() {
    check_ingester_logs(t()).unwrap();
}

#[test]
fn the_ingester_roles_are_least_privilege() {
    check_ingester_roles_are_least_privilege(t()).unwrap();
}

#[test]
fn an_ingester_that_is_not_running_raises_an_alarm() {
    check_ingester_alarms(t()).unwrap();
}

#[test]
fn an_ingester_far_behind_the_feed_raises_an_alarm() {
    check_ingester_lag_alarm(t()).unwrap();
}

#[test]
fn the_ingester_images_are_immutable_and_scanned() {
    check_ingester_repository(t()).unwrap();
}

/// The canaries: each breaks the ingester's part of a copy of the template; its check must fail
/// on the copy (and pass on the template).
#[test]
fn ingester_checks_catch_broken_templates() {
    let text = std::fs::read_to_string(TEMPLATE_PATH).expect("infra/template.yaml");
    let mutations: Vec<Mutation> = vec![
        (
            "the ingester gets a public IP",
            "          AssignPublicIp: DISABLED\n          Subnets: !If [CreateVpc, [!Ref PrivateSubnetA, !Ref PrivateSubnetB], !Ref ExistingPrivateSubnetIds]\n          SecurityGroups: [!Ref IngesterSecurityGroup]",
            "          AssignPublicIp: ENABLED\n          Subnets: !If [CreateVpc, [!Ref PrivateSubnetA, !Ref PrivateSubnetB], !Ref ExistingPrivateSubnetIds]\n          SecurityGroups: [!Ref IngesterSecurityGroup]",
            check_ingester_is_one_private_task,
        ),
        (
            "the ingester runs in the public subnet",
            "          Subnets: !If [CreateVpc, [!Ref PrivateSubnetA, !Ref PrivateSubnetB], !Ref ExistingPrivateSubnetIds]\n          SecurityGroups: [!Ref IngesterSecurityGroup]",
            "          Subnets: !If [CreateVpc, [!Ref PublicSubnetA], !Ref ExistingPrivateSubnetIds]\n          SecurityGroups: [!Ref IngesterSecurityGroup]",
            check_ingester_is_one_private_task,
        ),
        (
            "two ingesters",
            "      TaskDefinition: !Ref IngesterTaskDefinition\n      LaunchType: FARGATE\n      PlatformVersion: LATEST\n      DesiredCount: 1\n",
            "      TaskDefinition: !Ref IngesterTaskDefinition\n      LaunchType: FARGATE\n      PlatformVersion: LATEST\n      DesiredCount: 2\n",
            check_ingester_is_one_private_task,
        ),
        (
            "a deployment runs the old and the new task side by side",
            "      TaskDefinition: !Ref IngesterTaskDefinition\n      LaunchType: FARGATE\n      PlatformVersion: LATEST\n      DesiredCount: 1\n      DeploymentConfiguration:\n        MinimumHealthyPercent: 0\n        MaximumPercent: 100\n",
            "      TaskDefinition: !Ref IngesterTaskDefinition\n      LaunchType: FARGATE\n      PlatformVersion: LATEST\n      DesiredCount: 1\n      DeploymentConfiguration:\n        MinimumHealthyPercent: 0\n        MaximumPercent: 200\n",
            check_ingester_is_one_private_task,
        ),
        (
            "a failing deployment is not rolled back",
            "        MaximumPercent: 100\n        DeploymentCircuitBreaker:\n          Enable: true\n          Rollback: true\n      NetworkConfiguration:\n        AwsvpcConfiguration:\n          AssignPublicIp: DISABLED\n          Subnets: !If [CreateVpc, [!Ref PrivateSubnetA, !Ref PrivateSubnetB], !Ref ExistingPrivateSubnetIds]\n          SecurityGroups: [!Ref IngesterSecurityGroup]",
            "        MaximumPercent: 100\n        DeploymentCircuitBreaker:\n          Enable: true\n          Rollback: false\n      NetworkConfiguration:\n        AwsvpcConfiguration:\n          AssignPublicIp: DISABLED\n          Subnets: !If [CreateVpc, [!Ref PrivateSubnetA, !Ref PrivateSubnetB], !Ref ExistingPrivateSubnetIds]\n          SecurityGroups: [!Ref IngesterSecurityGroup]",
            check_ingester_is_one_private_task,
        ),
        (
            "the first deploy creates a service without an image",
            "    Condition: HasIngesterImage\n    # The schema first",
            "    # The schema first",
            check_ingester_is_one_private_task,
        ),
        (
            "the ingester on x86",
            "      # Graviton: 20 % cheaper per vCPU-hour than x86; the binary is built for aarch64.\n      RuntimePlatform: { CpuArchitecture: ARM64,",
            "      # Graviton: 20 % cheaper per vCPU-hour than x86; the binary is built for aarch64.\n      RuntimePlatform: { CpuArchitecture: X86_64,",
            check_ingester_is_one_private_task,
        ),
        (
            "RDS Proxy does not admit the ingester",
            "      SourceSecurityGroupId: !Ref IngesterSecurityGroup\n      Description: PostgreSQL from the ingester",
            "      SourceSecurityGroupId: !Ref FunctionSecurityGroup\n      Description: PostgreSQL from the ingester",
            check_ingester_reaches_the_proxy,
        ),
        (
            "the ingester connects to the instance, not the proxy",
            "            - { Name: DATABASE_HOST, Value: !If [CreateDatabase, !GetAtt DatabaseProxy.Endpoint, !Ref ExistingDatabaseHost] }",
            "            - { Name: DATABASE_HOST, Value: !If [CreateDatabase, !GetAtt Database.Endpoint.Address, !Ref ExistingDatabaseHost] }",
            check_ingester_reaches_the_proxy,
        ),
        (
            "the Secrets Manager endpoint does not admit the ingester",
            "      SourceSecurityGroupId: !Ref IngesterSecurityGroup\n      Description: \"HTTPS from the ingester",
            "      SourceSecurityGroupId: !Ref FunctionSecurityGroup\n      Description: \"HTTPS from the ingester",
            super::deploy_review::check_secrets_endpoint_admits_everyone_who_reads_a_secret,
        ),
        (
            "the ingester connects as the master user",
            "            - { Name: DATABASE_SECRET_ARN, Value: !If [CreateDatabase, !Ref AppDatabaseSecret, !Ref ExistingDatabaseSecretArn] }",
            "            - { Name: DATABASE_SECRET_ARN, Value: !If [CreateDatabase, !Ref DatabaseSecret, !Ref ExistingDatabaseSecretArn] }",
            check_ingester_environment,
        ),
        (
            "the ingester without its exchange key",
            "            - { Name: EXCHANGE_API_KEY_SECRET_ARN, Value: !If [CreateExchangeSecret, !Ref ExchangeApiKeySecret, !Ref ExchangeApiKeySecretArn] }\n",
            "",
            check_ingester_environment,
        ),
        (
            "the feed URL accepts ws://",
            "AllowedPattern: \"^$|^wss://[^\\\\s/?#]+(/\\\\S*)?$\"",
            "AllowedPattern: \"^$|^wss?://[^\\\\s/?#]+(/\\\\S*)?$\"",
            check_ingester_environment,
        ),
        (
            "the ingester's log group keeps logs forever",
            "      LogGroupName: !Sub /ecs/${AWS::StackName}-ingester\n      RetentionInDays: !Ref LogRetentionDays\n",
            "      LogGroupName: !Sub /ecs/${AWS::StackName}-ingester\n",
            check_ingester_logs,
        ),
        (
            "the ingester may read every secret",
            "                  - !If [CreateExchangeSecret, !Ref ExchangeApiKeySecret, !Ref ExchangeApiKeySecretArn]\n\n  IngesterTaskDefinition:",
            "                  - \"*\"\n\n  IngesterTaskDefinition:",
            check_ingester_roles_are_least_privilege,
        ),
        (
            "ECS's execution role may read secrets",
            "Sid: PullTheIngesterImage\n                Effect: Allow\n                Action: [ecr:BatchGetImage, ecr:GetDownloadUrlForLayer, ecr:BatchCheckLayerAvailability]",
            "Sid: PullTheIngesterImage\n                Effect: Allow\n                Action: [ecr:BatchGetImage, ecr:GetDownloadUrlForLayer, ecr:BatchCheckLayerAvailability, secretsmanager:GetSecretValue]",
            check_ingester_roles_are_least_privilege,
        ),
        (
            "a stopped ingester reads as fine",
            "        - { Name: ServiceName, Value: !GetAtt IngesterService.Name }\n      Statistic: SampleCount\n      Period: 60\n      EvaluationPeriods: 5\n      DatapointsToAlarm: 5\n      Threshold: 1\n      ComparisonOperator: LessThanThreshold\n      TreatMissingData: breaching\n",
            "        - { Name: ServiceName, Value: !GetAtt IngesterService.Name }\n      Statistic: SampleCount\n      Period: 60\n      EvaluationPeriods: 5\n      DatapointsToAlarm: 5\n      Threshold: 1\n      ComparisonOperator: LessThanThreshold\n      TreatMissingData: notBreaching\n",
            check_ingester_alarms,
        ),
        (
            "the lag filter matches a message the ingester does not log",
            "FilterPattern: '{ $.message = \"execution reports ingested in the last 10 s\" }'",
            "FilterPattern: '{ $.message = \"execution reports ingested\" }'",
            check_ingester_lag_alarm,
        ),
        (
            "mutable image tags",
            "ImageTagMutability: IMMUTABLE",
            "ImageTagMutability: MUTABLE",
            check_ingester_repository,
        ),
        (
            "the ingester's pool outgrows the connection budget",
            "            - { Name: DATABASE_POOL_SIZE, Value: \"2\" }",
            "            - { Name: DATABASE_POOL_SIZE, Value: \"8\" }",
            super::connections::check_connection_budget,
        ),
    ];
    assert_canaries_caught(&text, mutations);
}
