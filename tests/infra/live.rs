//! Live order updates in AWS (issue #16): API Gateway's WebSocket API with exactly the
//! `$connect` and `$disconnect` routes, both integrated with the live-connect function (which
//! checks the API key itself), throttled and access-logged; API Gateway allowed to invoke that
//! function from this API only; the fan-out as an ECS service of exactly one task, from the
//! ingester's image, in the private subnets, through RDS Proxy; and `execute-api:ManageConnections`
//! granted to the fan-out alone, on this API's stage's `@connections` only. Each check has a
//! canary that breaks a copy of the template (`live_checks_catch_broken_templates`).

use order_shared::config::LiveFanoutConfig;

use super::deploy_review::sources;
use super::ingester::{
    container_environment, most_tasks, referenced_name, resource_condition, role_statements,
    service_of, task_of, the_one, with_ingester,
};
use super::*;

const FANOUT: &str = "live-fanout";

/// The fan-out container's environment in the deploy that creates it (with an image).
pub(super) fn fanout_environment(t: &Template) -> Result<BTreeMap<String, String>, String> {
    container_environment(&with_ingester(t), FANOUT)
}

/// The fan-out's settings as its own start-up code reads them from the template.
pub(super) fn fanout_config(t: &Template) -> Result<LiveFanoutConfig, String> {
    let env = env_lookup(fanout_environment(t)?);
    LiveFanoutConfig::from_env(&env).map_err(|e| format!("live-fanout: {e}"))
}

/// The WebSocket API and its one stage.
fn websocket_api(t: &Template) -> Result<(String, String), String> {
    let mut apis = t
        .of_type("AWS::ApiGatewayV2::Api")
        .filter(|(_, a)| a["Properties"]["ProtocolType"] == "WEBSOCKET");
    let (api, _) = apis
        .next()
        .ok_or("no WebSocket API (ProtocolType WEBSOCKET)")?;
    ensure!(apis.next().is_none(), "one WebSocket API");
    let stages: Vec<&String> = t
        .of_type("AWS::ApiGatewayV2::Stage")
        .filter(|(_, s)| s["Properties"]["ApiId"] == json!({ "Ref": api }))
        .map(|(name, _)| name)
        .collect();
    ensure!(stages.len() == 1, "{api}: one stage, found {stages:?}");
    Ok((api.clone(), stages[0].clone()))
}

/// The `!Sub` text of a value, if it is one.
fn sub_text(value: &Value) -> Option<&str> {
    value["Fn::Sub"].as_str()
}

// --- the checks ---------------------------------------------------------------------------------

/// Exactly `$connect` and `$disconnect`, each integrated (AWS_PROXY) with the live-connect
/// function; `$connect` without an API Gateway authorizer only because that function checks the
/// key (it reads the pepper: `only_the_key_checking_functions_read_the_generated_api_key_pepper`).
pub(super) fn check_websocket_routes(t: &Template) -> CheckResult {
    let (api, _) = websocket_api(t)?;
    let properties = &t.resource(&api)["Properties"];
    ensure!(
        properties["RouteSelectionExpression"].is_string(),
        "{api}: RouteSelectionExpression"
    );
    let function = t.function_for("live-connect");
    let mut routes = BTreeSet::new();
    for (route, resource) in t.of_type("AWS::ApiGatewayV2::Route") {
        let p = &resource["Properties"];
        if p["ApiId"] != json!({ "Ref": api }) {
            continue;
        }
        let key = p["RouteKey"].as_str().ok_or(format!("{route}: RouteKey"))?;
        ensure!(routes.insert(key.to_owned()), "{route}: {key} twice");
        let target = sub_text(&p["Target"]).ok_or(format!(
            "{route}: Target is !Sub \"integrations/${{<integration>}}\""
        ))?;
        let integration = target
            .strip_prefix("integrations/${")
            .and_then(|rest| rest.strip_suffix('}'))
            .ok_or(format!("{route}: Target {target}"))?;
        let i = &t.resource(integration)["Properties"];
        ensure!(
            i["IntegrationType"] == "AWS_PROXY",
            "{integration}: AWS_PROXY (the function sees the whole event)"
        );
        let uri = sub_text(&i["IntegrationUri"]).unwrap_or_default();
        ensure!(
            uri.contains(&format!("functions/${{{function}.Arn}}/invocations")),
            "{integration}: must invoke {function}, not {uri}"
        );
        ensure!(
            p["AuthorizationType"] == "NONE" && p.get("AuthorizerId").is_none(),
            "{route}: the function authenticates (AuthorizationType NONE, no authorizer)"
        );
    }
    ensure!(
        routes == BTreeSet::from(["$connect".to_owned(), "$disconnect".to_owned()]),
        "{api}: routes must be exactly $connect and $disconnect (clients send nothing), not {routes:?}"
    );
    let reads_key = t
        .environment(&function)
        .contains_key("API_KEY_PEPPER_SECRET_ARN");
    ensure!(
        reads_key,
        "{function}: $connect has no authorizer, so the function must check the API key (API_KEY_PEPPER_SECRET_ARN)"
    );
    Ok(())
}

/// API Gateway may invoke the live-connect function, from this API's stage only; nothing else
/// may.
pub(super) fn check_live_connect_permission(t: &Template) -> CheckResult {
    let (api, stage) = websocket_api(t)?;
    let function = t.function_for("live-connect");
    let permissions: Vec<(&String, &Value)> = t
        .of_type("AWS::Lambda::Permission")
        .filter(|(_, p)| p["Properties"]["FunctionName"] == json!({ "Ref": function }))
        .collect();
    ensure!(
        permissions.len() == 1,
        "{function}: one Lambda permission, found {}",
        permissions.len()
    );
    let (name, permission) = permissions[0];
    let p = &permission["Properties"];
    ensure!(
        p["Action"] == "lambda:InvokeFunction" && p["Principal"] == "apigateway.amazonaws.com",
        "{name}: API Gateway may invoke"
    );
    let source = sub_text(&p["SourceArn"]).unwrap_or_default();
    ensure!(
        source.starts_with("arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:")
            && source.ends_with(&format!(":${{{api}}}/${{{stage}}}/*")),
        "{name}: SourceArn must be {api}'s stage {stage}, not {source}"
    );
    Ok(())
}

/// The stage: throttled, access logs into a group with retention; its deployment comes after
/// both routes.
pub(super) fn check_websocket_stage(t: &Template) -> CheckResult {
    let (api, stage) = websocket_api(t)?;
    let p = &t.resource(&stage)["Properties"];
    for limit in ["ThrottlingRateLimit", "ThrottlingBurstLimit"] {
        ensure!(
            !p["DefaultRouteSettings"][limit].is_null(),
            "{stage}: DefaultRouteSettings.{limit}"
        );
    }
    let destination = &p["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"];
    let group = destination[0]
        .as_str()
        .ok_or(format!("{stage}: access logs to !GetAtt <group>.Arn"))?;
    let log_group = t.resource(group);
    ensure!(
        log_group["Type"] == "AWS::Logs::LogGroup"
            && log_group["Properties"]["RetentionInDays"] == json!({ "Ref": "LogRetentionDays" }),
        "{group}: a log group with RetentionInDays LogRetentionDays"
    );
    let format = p["AccessLogSettings"]["Format"]
        .as_str()
        .unwrap_or_default();
    ensure!(
        format.contains("$context.connectionId") && format.contains("$context.status"),
        "{stage}: the access log names the connection and the status"
    );
    ensure!(
        !format.contains("$context.authorizer") && !format.contains("$input"),
        "{stage}: the access log must not hold request data (the key)"
    );
    let deployment =
        referenced_name(&p["DeploymentId"]).ok_or(format!("{stage}: DeploymentId is a !Ref"))?;
    let depends = t.resource(&deployment)["DependsOn"].to_string();
    for (route, r) in t.of_type("AWS::ApiGatewayV2::Route") {
        if r["Properties"]["ApiId"] == json!({ "Ref": api }) {
            ensure!(
                depends.contains(&format!("\"{route}\"")),
                "{deployment}: must DependsOn {route} (a deployment made before a route lacks it)"
            );
        }
    }
    // The account's API Gateway logging role: WebSocket stages cannot log without it.
    let (account, resource) = the_one(t, "AWS::ApiGateway::Account")?;
    ensure!(
        resource["Properties"]["CloudWatchRoleArn"].is_object(),
        "{account}: CloudWatchRoleArn"
    );
    Ok(())
}

/// `execute-api:ManageConnections`: the fan-out's task role only, on this API's stage's
/// `POST` (PostToConnection) and `DELETE` (DeleteConnection) `@connections/*` only.
pub(super) fn check_manage_connections_is_the_fanouts_only(t: &Template) -> CheckResult {
    let (api, stage) = websocket_api(t)?;
    let (task, definition, _) = task_of(t, FANOUT)?;
    let task_role = definition["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
        .as_str()
        .ok_or(format!("{task}: TaskRoleArn is !GetAtt <role>.Arn"))?
        .to_owned();
    let expected: BTreeSet<String> = ["POST", "DELETE"]
        .into_iter()
        .map(|method| {
            format!(
                "arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{{api}}}/${{{stage}}}/{method}/@connections/*"
            )
        })
        .collect();
    let mut granted = BTreeSet::new();
    for (owner, statement) in iam_statements(t) {
        let actions = actions_of(&statement);
        if !actions.iter().any(|a| a.starts_with("execute-api:")) {
            continue;
        }
        ensure!(
            owner == task_role,
            "{owner} may {actions:?}: only the fan-out's task role ({task_role}) may manage connections"
        );
        ensure!(
            actions == ["execute-api:ManageConnections"],
            "{owner}: {actions:?}; only execute-api:ManageConnections"
        );
        let resources = match &statement["Resource"] {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        for resource in resources {
            let text = sub_text(&resource)
                .ok_or(format!("{owner}: ManageConnections on {resource}"))?
                .to_owned();
            ensure!(
                expected.contains(&text),
                "{owner}: ManageConnections on {text}; only {expected:?}"
            );
            granted.insert(text);
        }
    }
    ensure!(
        granted == expected,
        "{task_role} must be granted ManageConnections on {expected:?}, is on {granted:?}"
    );
    // And otherwise only the database's secret.
    for statement in role_statements(t, &task_role) {
        let actions = actions_of(&statement);
        ensure!(
            actions == ["execute-api:ManageConnections"]
                || (actions == ["secretsmanager:GetSecretValue"]
                    && t.resolve(&statement["Resource"]) == json!({ "Ref": "AppDatabaseSecret" })),
            "{task_role} may only manage the connections and read the database's secret: {statement}"
        );
    }
    Ok(())
}

/// One fan-out, never two (two would send every message twice): its own ECS service, created
/// with the ingester's image, one task in a deployment too, private, rolled back when it cannot
/// start, reaching the proxy; the image's second binary as its entry point.
pub(super) fn check_fanout_is_one_private_task(t: &Template) -> CheckResult {
    let with = with_ingester(t);
    let (service, resource) = service_of(t, FANOUT)?;
    let (task, definition, container) = task_of(t, FANOUT)?;
    for name in [service, &task] {
        let condition = t.resource(name)["Condition"]
            .as_str()
            .ok_or(format!("{name}: exists only with an image (Condition)"))?;
        ensure!(
            !t.condition(condition) && with.condition(condition),
            "{name}: created exactly when IngesterImageUri is set"
        );
    }
    let p = &resource["Properties"];
    ensure!(
        p["LaunchType"] == "FARGATE" && with.number(&p["DesiredCount"]) == 1.0,
        "{service}: one Fargate task"
    );
    let most = most_tasks(&with, FANOUT)?;
    ensure!(
        most == 1,
        "{service}: up to {most} tasks at once in a deployment; each would send every message"
    );
    let breaker = &p["DeploymentConfiguration"]["DeploymentCircuitBreaker"];
    ensure!(
        is_true(&breaker["Enable"]) && is_true(&breaker["Rollback"]),
        "{service}: circuit breaker with rollback"
    );
    let network = &p["NetworkConfiguration"]["AwsvpcConfiguration"];
    ensure!(
        network["AssignPublicIp"] == "DISABLED",
        "{service}: AssignPublicIp DISABLED"
    );
    let functions = with.resolve(&t.root["Globals"]["Function"]["VpcConfig"]["SubnetIds"]);
    ensure!(
        with.resolve(&network["Subnets"]) == functions,
        "{service}: the functions' private subnets"
    );
    let (proxy, proxy_resource) = the_one(t, "AWS::RDS::DBProxy")?;
    let mut admitted = BTreeSet::new();
    for group in proxy_resource["Properties"]["VpcSecurityGroupIds"]
        .as_array()
        .ok_or("proxy security groups")?
    {
        admitted.extend(sources(t, &referenced_name(group).ok_or("a !Ref")?, 5432.0));
    }
    for group in network["SecurityGroups"]
        .as_array()
        .ok_or(format!("{service}: SecurityGroups"))?
    {
        let group = referenced_name(group).ok_or("a !Ref")?;
        ensure!(
            admitted.contains(&group),
            "{proxy} does not admit {group} ({service})"
        );
    }
    let d = &definition["Properties"];
    ensure!(
        d["RuntimePlatform"]["CpuArchitecture"] == "ARM64",
        "{task}: ARM64, what the image is built for"
    );
    ensure!(
        container["Image"] == json!({ "Ref": "IngesterImageUri" })
            && container["EntryPoint"] == json!(["/usr/local/bin/live-fanout"]),
        "{task}: the ingester's image, entry point /usr/local/bin/live-fanout"
    );
    ensure!(
        is_true(&container["ReadonlyRootFilesystem"]) && container["User"] == "65532:65532",
        "{task}: read-only, non-root"
    );
    let logs = &container["LogConfiguration"];
    let group = referenced_name(&logs["Options"]["awslogs-group"])
        .ok_or(format!("{task}: awslogs into the stack's group"))?;
    ensure!(
        t.resource(&group)["Properties"]["RetentionInDays"] == json!({ "Ref": "LogRetentionDays" }),
        "{group}: RetentionInDays LogRetentionDays"
    );
    // The not-running alarm, as the ingester's.
    let service_name = json!({ "Fn::GetAtt": [service, "Name"] });
    let (alarm, _) = alarms(t)
        .into_iter()
        .find(|(_, a)| a["Namespace"] == "AWS/ECS" && dimension_is(a, "ServiceName", &service_name))
        .ok_or(format!("no alarm on {service}'s AWS/ECS metrics"))?;
    ensure!(
        resource_condition(t, alarm) == resource_condition(t, service),
        "{alarm}: exists exactly when {service} does"
    );
    Ok(())
}

/// Its settings pass its own start-up validation; the management endpoint is this API's stage;
/// the application role through the proxy with verified TLS.
pub(super) fn check_fanout_environment(t: &Template) -> CheckResult {
    let config = fanout_config(t)?;
    let (api, stage) = websocket_api(t)?;
    let stage_name = t.resource(&stage)["Properties"]["StageName"]
        .as_str()
        .ok_or(format!("{stage}: StageName"))?;
    let expected = format!(
        "https://abc0{}.execute-api.us-east-1.amazonaws.com/{stage_name}",
        api.to_lowercase()
    );
    ensure!(
        config.endpoint == expected,
        "live-fanout: LIVE_UPDATES_ENDPOINT must be {api}'s stage {stage_name} ({expected}), not {}",
        config.endpoint
    );
    let env = fanout_environment(t)?;
    ensure!(
        env.get("DATABASE_SECRET_ARN").map(String::as_str)
            == Some(r#"<deploy-time {"Ref":"AppDatabaseSecret"}>"#),
        "live-fanout: the application role's secret"
    );
    ensure!(
        env.get("DATABASE_TLS").map(String::as_str) == Some("verify-full"),
        "live-fanout: DATABASE_TLS verify-full"
    );
    ensure!(
        env.get("DATABASE_HOST").map(String::as_str)
            == Some(r#"<deploy-time {"Fn::GetAtt":["DatabaseProxy","Endpoint"]}>"#),
        "live-fanout: through the proxy, not {:?}",
        env.get("DATABASE_HOST")
    );
    // The output clients connect to: the same stage, over wss.
    let output = t.process_text(&t.root["Outputs"]["LiveUpdatesUrl"]["Value"]);
    ensure!(
        output == expected.replacen("https://", "wss://", 1),
        "output LiveUpdatesUrl must be {api}'s stage over wss, not {output}"
    );
    Ok(())
}

/// The image holds the fan-out: the Dockerfile copies it, the build script builds it.
fn check_image_holds_the_fanout() -> CheckResult {
    let read = |path: &str| {
        std::fs::read_to_string(std::path::Path::new(WORKSPACE).join(path))
            .map_err(|e| format!("{path}: {e}"))
    };
    ensure!(
        read("infra/ingester.Dockerfile")?.contains("COPY live-fanout /usr/local/bin/live-fanout"),
        "infra/ingester.Dockerfile must copy the fan-out to /usr/local/bin/live-fanout"
    );
    ensure!(
        read("scripts/build-ingester-image.sh")?
            .contains("cargo lambda build --release --arm64 --bin ingester --bin live-fanout"),
        "scripts/build-ingester-image.sh must build the fan-out too"
    );
    Ok(())
}

// --- the tests --------------------------------------------------------------------------------

#[test]
fn the_websocket_api_routes_connect_and_disconnect_to_the_live_connect_function() {
    check_websocket_routes(t()).unwrap();
}

#[test]
fn only_the_websocket_api_may_invoke_the_live_connect_function() {
    check_live_connect_permission(t()).unwrap();
}

#[test]
fn the_websocket_stage_is_throttled_and_access_logged() {
    check_websocket_stage(t()).unwrap();
}

#[test]
fn only_the_fanout_manages_connections_and_only_this_stages() {
    check_manage_connections_is_the_fanouts_only(t()).unwrap();
}

#[test]
fn the_fanout_is_one_private_task_from_the_ingesters_image() {
    check_fanout_is_one_private_task(t()).unwrap();
    check_image_holds_the_fanout().unwrap();
}

#[test]
fn the_fanout_environment_passes_its_start_up_validation() {
    check_fanout_environment(t()).unwrap();
}

/// The canaries: each breaks the live updates' part of a copy of the template; its check must
/// fail on the copy (and pass on the template).
#[test]
fn live_checks_catch_broken_templates() {
    let text = std::fs::read_to_string(TEMPLATE_PATH).expect("infra/template.yaml");
    let mutations: Vec<Mutation> = vec![
        (
            "a $default route (clients' messages reach the function)",
            "      RouteKey: $disconnect\n",
            "      RouteKey: $default\n",
            check_websocket_routes,
        ),
        (
            "the integration calls another function",
            "functions/${LiveConnectFunction.Arn}/invocations",
            "functions/${ApiFunction.Arn}/invocations",
            check_websocket_routes,
        ),
        (
            "live-connect no longer checks the key",
            "          API_KEY_PEPPER_SECRET_ARN: !If [CreatePepperSecret, !Ref ApiKeyPepperSecret, !Ref ExistingApiKeyPepperSecretArn]\n\n  LiveConnectLogGroup:",
            "\n  LiveConnectLogGroup:",
            check_websocket_routes,
        ),
        (
            "any API may invoke live-connect",
            "${LiveUpdatesApi}/${LiveUpdatesStage}/*\"",
            "*\"",
            check_live_connect_permission,
        ),
        (
            "an unthrottled stage",
            "        ThrottlingRateLimit: 50\n",
            "",
            check_websocket_stage,
        ),
        (
            "access logs kept forever",
            "            comment: \"CloudWatch Logs encrypts every log group at rest; the access log holds no key (the format names no header or query string), so a customer key adds cost and a key policy for no gain.\"\n    Properties:\n      RetentionInDays: !Ref LogRetentionDays\n",
            "            comment: \"CloudWatch Logs encrypts every log group at rest; the access log holds no key (the format names no header or query string), so a customer key adds cost and a key policy for no gain.\"\n    Properties:\n      LogGroupClass: STANDARD\n",
            check_websocket_stage,
        ),
        (
            "a deployment before the routes",
            "    DependsOn: [LiveConnectRoute, LiveDisconnectRoute]\n",
            "    DependsOn: [LiveConnectRoute]\n",
            check_websocket_stage,
        ),
        (
            "ManageConnections on every API",
            "execute-api:${AWS::Region}:${AWS::AccountId}:${LiveUpdatesApi}/${LiveUpdatesStage}/POST/@connections/*",
            "execute-api:${AWS::Region}:${AWS::AccountId}:*/*/POST/@connections/*",
            check_manage_connections_is_the_fanouts_only,
        ),
        (
            "the fan-out cannot close a revoked key's connections",
            "                  - !Sub \"arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${LiveUpdatesApi}/${LiveUpdatesStage}/DELETE/@connections/*\"\n",
            "",
            check_manage_connections_is_the_fanouts_only,
        ),
        (
            "the ingester may post to the connections",
            "                  - !If [CreateExchangeSecret, !Ref ExchangeApiKeySecret, !Ref ExchangeApiKeySecretArn]\n\n  IngesterTaskDefinition:",
            "                  - !If [CreateExchangeSecret, !Ref ExchangeApiKeySecret, !Ref ExchangeApiKeySecretArn]\n              - Effect: Allow\n                Action: execute-api:ManageConnections\n                Resource: !Sub \"arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${LiveUpdatesApi}/${LiveUpdatesStage}/POST/@connections/*\"\n\n  IngesterTaskDefinition:",
            check_manage_connections_is_the_fanouts_only,
        ),
        (
            "two fan-outs",
            "      TaskDefinition: !Ref LiveFanoutTaskDefinition\n      LaunchType: FARGATE\n      PlatformVersion: LATEST\n      DesiredCount: 1\n",
            "      TaskDefinition: !Ref LiveFanoutTaskDefinition\n      LaunchType: FARGATE\n      PlatformVersion: LATEST\n      DesiredCount: 2\n",
            check_fanout_is_one_private_task,
        ),
        (
            "a fan-out deployment runs two tasks side by side",
            "      DesiredCount: 1\n      DeploymentConfiguration:\n        MinimumHealthyPercent: 0\n        MaximumPercent: 100\n        DeploymentCircuitBreaker:\n          Enable: true\n          Rollback: true\n      NetworkConfiguration:\n        AwsvpcConfiguration:\n          AssignPublicIp: DISABLED\n          Subnets: !If [CreateVpc, [!Ref PrivateSubnetA, !Ref PrivateSubnetB], !Ref ExistingPrivateSubnetIds]\n          # The ingester's group",
            "      DesiredCount: 1\n      DeploymentConfiguration:\n        MinimumHealthyPercent: 0\n        MaximumPercent: 200\n        DeploymentCircuitBreaker:\n          Enable: true\n          Rollback: true\n      NetworkConfiguration:\n        AwsvpcConfiguration:\n          AssignPublicIp: DISABLED\n          Subnets: !If [CreateVpc, [!Ref PrivateSubnetA, !Ref PrivateSubnetB], !Ref ExistingPrivateSubnetIds]\n          # The ingester's group",
            check_fanout_is_one_private_task,
        ),
        (
            "the fan-out runs the ingester",
            "          EntryPoint: [/usr/local/bin/live-fanout]\n",
            "",
            check_fanout_is_one_private_task,
        ),
        (
            "the fan-out's endpoint is another stage",
            "              Value: !Sub \"https://${LiveUpdatesApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${LiveUpdatesStage}\"",
            "              Value: !Sub \"https://${LiveUpdatesApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/prod\"",
            check_fanout_environment,
        ),
        (
            "the fan-out connects to the instance",
            "            - Name: DATABASE_HOST\n              Value: !If [CreateDatabase, !GetAtt DatabaseProxy.Endpoint, !Ref ExistingDatabaseHost]",
            "            - Name: DATABASE_HOST\n              Value: !If [CreateDatabase, !GetAtt Database.Endpoint.Address, !Ref ExistingDatabaseHost]",
            check_fanout_environment,
        ),
    ];
    assert_canaries_caught(&text, mutations);
}
