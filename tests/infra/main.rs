//! Invariants of the SAM template `infra/template.yaml`: what the design and the deploy issue
//! promise about queues, event sources, alarms, functions, IAM, configuration, the database and
//! migrations. The template is parsed as YAML (CloudFormation short-form tags such as `!Ref`,
//! `!GetAtt` and `!Sub` are turned into their long form), and parameters resolve to their
//! defaults, i.e. the stack that `sam deploy` creates when nothing is overridden.
//!
//! cfn-lint and `sam validate` (scripts/validate-infra.sh) check that the template is valid; this
//! test checks that it is *right*. It needs no AWS access and no running services.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::LazyLock;

use order_shared::config::{AlerterConfig, ApiConfig, Env, PlacerConfig, SweeperConfig};
use serde_json::{Map, Value, json};

const TEMPLATE_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml");
const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// `INFRA_TEMPLATE` points the test at another template (used to check that the test catches
/// broken variants); by default it reads `infra/template.yaml`.
static TEMPLATE: LazyLock<Template> = LazyLock::new(|| {
    let path = std::env::var("INFRA_TEMPLATE").unwrap_or_else(|_| TEMPLATE_PATH.to_owned());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    Template::parse(&text)
});

fn t() -> &'static Template {
    &TEMPLATE
}

// ---------------------------------------------------------------------------------------------
// Parsing: YAML with CloudFormation tags -> JSON in the long form.
// ---------------------------------------------------------------------------------------------

fn yaml_to_json(value: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else if let Some(u) = n.as_u64() {
                json!(u)
            } else {
                json!(n.as_f64().expect("a YAML number"))
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(mapping) => {
            let mut object = Map::new();
            for (key, value) in mapping {
                let key = match key {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => panic!("unsupported mapping key {other:?}"),
                };
                object.insert(key, yaml_to_json(value));
            }
            Value::Object(object)
        }
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = yaml_to_json(tagged.value);
            match name {
                "Ref" => json!({ "Ref": inner }),
                "Condition" => json!({ "Condition": inner }),
                "GetAtt" => match inner {
                    // `!GetAtt Resource.Attribute` (the attribute may itself contain dots).
                    Value::String(s) => {
                        let (resource, attribute) =
                            s.split_once('.').expect("!GetAtt Resource.Attribute");
                        json!({ "Fn::GetAtt": [resource, attribute] })
                    }
                    other => json!({ "Fn::GetAtt": other }),
                },
                other => json!({ format!("Fn::{other}"): inner }),
            }
        }
    }
}

/// The parsed template plus the parameter defaults used to resolve `Ref`s and conditions.
struct Template {
    root: Value,
    defaults: HashMap<String, Value>,
}

impl Template {
    fn parse(text: &str) -> Self {
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).expect("valid YAML");
        let root = yaml_to_json(yaml);
        let mut defaults = HashMap::new();
        for (name, parameter) in root["Parameters"].as_object().expect("Parameters") {
            let Some(default) = parameter.get("Default") else {
                continue;
            };
            let value = if parameter["Type"] == "CommaDelimitedList" {
                let text = scalar_text(default);
                Value::Array(
                    text.split(',')
                        .map(|s| Value::String(s.trim().to_owned()))
                        .collect(),
                )
            } else {
                Value::String(scalar_text(default))
            };
            defaults.insert(name.clone(), value);
        }
        Self { root, defaults }
    }

    fn resources(&self) -> &Map<String, Value> {
        self.root["Resources"].as_object().expect("Resources")
    }

    fn resource(&self, name: &str) -> &Value {
        self.resources()
            .get(name)
            .unwrap_or_else(|| panic!("resource {name} missing"))
    }

    fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a String, &'a Value)> {
        self.resources()
            .iter()
            .filter(move |(_, r)| r["Type"] == kind)
    }

    fn parameter_default(&self, name: &str) -> &Value {
        self.defaults
            .get(name)
            .unwrap_or_else(|| panic!("parameter {name} has no default"))
    }

    /// Is the condition true for the default parameters?
    fn condition(&self, name: &str) -> bool {
        let definition = &self.root["Conditions"][name];
        assert!(!definition.is_null(), "condition {name} missing");
        self.eval_condition(definition)
    }

    fn eval_condition(&self, value: &Value) -> bool {
        let object = value.as_object().expect("a condition is an object");
        let (function, args) = object.iter().next().expect("one condition function");
        match function.as_str() {
            "Fn::Equals" => {
                let a = self.resolve(&args[0]);
                let b = self.resolve(&args[1]);
                comparable(&a) == comparable(&b)
            }
            "Fn::Not" => !self.eval_condition(&args[0]),
            "Fn::And" => args
                .as_array()
                .unwrap()
                .iter()
                .all(|c| self.eval_condition(c)),
            "Fn::Or" => args
                .as_array()
                .unwrap()
                .iter()
                .any(|c| self.eval_condition(c)),
            "Condition" => self.condition(args.as_str().unwrap()),
            other => panic!("unsupported condition function {other}"),
        }
    }

    /// Resolves parameter `Ref`s to their defaults and `Fn::If` by its condition; everything
    /// else (references to resources, `Fn::Sub`, ...) stays symbolic.
    fn resolve(&self, value: &Value) -> Value {
        match value {
            Value::Object(object) if object.len() == 1 => {
                let (key, arg) = object.iter().next().unwrap();
                match key.as_str() {
                    "Ref" => {
                        let name = arg.as_str().expect("Ref name");
                        match self.defaults.get(name) {
                            Some(default) => default.clone(),
                            None => value.clone(),
                        }
                    }
                    "Fn::If" => {
                        let args = arg.as_array().expect("Fn::If args");
                        let chosen = if self.condition(args[0].as_str().unwrap()) {
                            &args[1]
                        } else {
                            &args[2]
                        };
                        self.resolve(chosen)
                    }
                    _ => Value::Object(
                        object
                            .iter()
                            .map(|(k, v)| (k.clone(), self.resolve(v)))
                            .collect(),
                    ),
                }
            }
            Value::Object(object) => Value::Object(
                object
                    .iter()
                    .map(|(k, v)| (k.clone(), self.resolve(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.resolve(v)).collect()),
            other => other.clone(),
        }
    }

    fn number(&self, value: &Value) -> f64 {
        let resolved = self.resolve(value);
        comparable(&resolved)
            .parse()
            .unwrap_or_else(|_| panic!("{value} is not a number"))
    }

    /// A function's properties with the template's `Globals.Function` merged in (as SAM does:
    /// the function's own values win; environment variables are merged).
    fn function(&self, name: &str) -> Value {
        let resource = self.resource(name);
        assert_eq!(resource["Type"], "AWS::Serverless::Function", "{name}");
        let mut merged = self.root["Globals"]["Function"].clone();
        let merged_object = merged.as_object_mut().expect("Globals.Function");
        let own = resource["Properties"].as_object().expect("Properties");
        for (key, value) in own {
            if key == "Environment" {
                let globals = merged_object
                    .get("Environment")
                    .and_then(|e| e["Variables"].as_object())
                    .cloned()
                    .unwrap_or_default();
                let mut variables = globals;
                for (k, v) in value["Variables"].as_object().expect("Variables") {
                    variables.insert(k.clone(), v.clone());
                }
                merged_object.insert(key.clone(), json!({ "Variables": variables }));
            } else {
                merged_object.insert(key.clone(), value.clone());
            }
        }
        merged
    }

    /// The `AWS::Serverless::Function`s, keyed by the binary they run.
    fn functions_by_binary(&self) -> BTreeMap<String, String> {
        self.of_type("AWS::Serverless::Function")
            .map(|(name, r)| {
                let binary = r["Metadata"]["BuildProperties"]["Binary"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name} has no Metadata.BuildProperties.Binary"));
                (binary.to_owned(), name.clone())
            })
            .collect()
    }

    fn function_for(&self, binary: &str) -> String {
        self.functions_by_binary()
            .get(binary)
            .unwrap_or_else(|| panic!("no function builds the `{binary}` binary"))
            .clone()
    }

    /// The resolved environment of a function as the process would see it; values that are
    /// only known at deploy time (ARNs, URLs) become a non-empty placeholder naming them.
    fn environment(&self, function: &str) -> BTreeMap<String, String> {
        let properties = self.function(function);
        let variables = properties["Environment"]["Variables"]
            .as_object()
            .unwrap_or_else(|| panic!("{function} has no environment"));
        variables
            .iter()
            .map(|(k, v)| {
                let resolved = self.resolve(v);
                let text = match &resolved {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    other => format!("<deploy-time {other}>"),
                };
                (k.clone(), text)
            })
            .collect()
    }

    fn events<'a>(&'a self, function: &str, kind: &'a str) -> Vec<&'a Value> {
        self.resource(function)["Properties"]["Events"]
            .as_object()
            .map(|events| {
                events
                    .values()
                    .filter(|e| e["Type"] == kind)
                    .map(|e| &e["Properties"])
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The logical id of the queue an SQS event reads, from `!GetAtt Queue.Arn`.
    fn queue_of(&self, event: &Value) -> String {
        let get_att = event["Queue"]["Fn::GetAtt"]
            .as_array()
            .expect("SQS event Queue is !GetAtt <queue>.Arn");
        assert_eq!(get_att[1], "Arn");
        let queue = get_att[0].as_str().unwrap().to_owned();
        assert_eq!(self.resource(&queue)["Type"], "AWS::SQS::Queue");
        queue
    }

    fn sqs_event(&self, function: &str) -> &Value {
        let events = self.events(function, "SQS");
        assert_eq!(events.len(), 1, "{function} has one SQS event source");
        events[0]
    }

    fn alert_topic(&self) -> String {
        let alerter = self.function_for("alerter");
        let topic = &self.function(&alerter)["Environment"]["Variables"]["ALERT_TOPIC_ARN"];
        let name = topic["Ref"]
            .as_str()
            .expect("ALERT_TOPIC_ARN is !Ref <topic>")
            .to_owned();
        assert_eq!(self.resource(&name)["Type"], "AWS::SNS::Topic");
        name
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other}"),
    }
}

/// CloudFormation compares values as strings ("5" and 5 are the same parameter value).
fn comparable(value: &Value) -> String {
    match value {
        Value::Array(items) => items.iter().map(comparable).collect::<Vec<_>>().join(","),
        Value::String(_) | Value::Number(_) | Value::Bool(_) => scalar_text(value),
        other => other.to_string(),
    }
}

fn is_true(value: &Value) -> bool {
    matches!(value, Value::Bool(true)) || value.as_str() == Some("true")
}

fn env_lookup(env: BTreeMap<String, String>) -> Env<impl Fn(&str) -> Option<String>> {
    Env(move |name: &str| env.get(name).cloned().filter(|v| !v.is_empty()))
}

const FUNCTION_BINARIES: [&str; 5] = ["api", "placer", "alerter", "sweeper", "migrator"];

// ---------------------------------------------------------------------------------------------
// Queues and event sources
// ---------------------------------------------------------------------------------------------

#[test]
fn visibility_timeouts_are_at_least_six_times_the_consumers_timeouts() {
    for binary in ["placer", "alerter"] {
        let function = t().function_for(binary);
        let queue = t().queue_of(t().sqs_event(&function));
        let timeout = t().number(&t().function(&function)["Timeout"]);
        let visibility = t().number(&t().resource(&queue)["Properties"]["VisibilityTimeout"]);
        assert!(
            visibility >= 6.0 * timeout,
            "{queue}: visibility timeout {visibility}s < 6 x {function} timeout {timeout}s"
        );
    }
}

#[test]
fn placement_lease_is_shorter_than_the_visibility_timeout() {
    let placer = t().function_for("placer");
    let queue = t().queue_of(t().sqs_event(&placer));
    let visibility = t().number(&t().resource(&queue)["Properties"]["VisibilityTimeout"]);
    let config = PlacerConfig::from_env(&env_lookup(t().environment(&placer)))
        .expect("the placer's template environment passes its start-up validation");
    assert!(
        (config.placer.lease.as_secs() as f64) < visibility,
        "lease {:?} must be shorter than the visibility timeout {visibility}s",
        config.placer.lease
    );
    // The placer's own work fits in its Lambda timeout.
    let timeout = t().number(&t().function(&placer)["Timeout"]);
    let exchange = config.exchange.connect_timeout + config.exchange.request_timeout;
    assert!(
        exchange.as_secs_f64() < timeout,
        "exchange call {exchange:?} vs timeout {timeout}s"
    );
}

#[test]
fn sqs_event_sources_report_batch_item_failures_and_limit_concurrency() {
    let mut seen = 0;
    for (name, resource) in t().of_type("AWS::Serverless::Function") {
        let events = t().events(name, "SQS");
        if events.is_empty() {
            continue;
        }
        seen += 1;
        let properties = t().function(name);
        assert!(
            properties.get("ReservedConcurrentExecutions").is_none()
                && resource["Properties"]
                    .get("ReservedConcurrentExecutions")
                    .is_none(),
            "{name} is SQS-triggered: reserved concurrency would make throttled receives count toward maxReceiveCount"
        );
        for event in events {
            let types = event["FunctionResponseTypes"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: FunctionResponseTypes missing"));
            assert!(
                types.contains(&json!("ReportBatchItemFailures")),
                "{name}: partial batch responses need ReportBatchItemFailures"
            );
            let max = t().number(&event["ScalingConfig"]["MaximumConcurrency"]);
            assert!(
                (2.0..=1000.0).contains(&max),
                "{name}: MaximumConcurrency {max}"
            );
            let batch = t().number(&event["BatchSize"]);
            assert!((1.0..=10.0).contains(&batch), "{name}: BatchSize {batch}");
        }
    }
    assert_eq!(seen, 2, "the placer and the alerter are SQS-triggered");

    let placer = t().function_for("placer");
    let event = t().sqs_event(&placer);
    assert_eq!(t().number(&event["BatchSize"]), 10.0);
    assert!(
        event.get("MaximumBatchingWindowInSeconds").is_some(),
        "placer: batching window"
    );
    let concurrency = &event["ScalingConfig"]["MaximumConcurrency"];
    let parameter = concurrency["Ref"]
        .as_str()
        .expect("the placer's MaximumConcurrency is a parameter (it protects the exchange)");
    assert!(t().root["Parameters"].get(parameter).is_some());
}

#[test]
fn orders_queue_redrives_to_the_alerters_dlq_after_max_receive_count() {
    let orders = t().queue_of(t().sqs_event(&t().function_for("placer")));
    let dlq = t().queue_of(t().sqs_event(&t().function_for("alerter")));
    assert_ne!(orders, dlq);
    let redrive = &t().resource(&orders)["Properties"]["RedrivePolicy"];
    assert_eq!(
        redrive["deadLetterTargetArn"],
        json!({ "Fn::GetAtt": [dlq, "Arn"] })
    );
    assert_eq!(
        redrive["maxReceiveCount"],
        json!({ "Ref": "MaxReceiveCount" })
    );
    assert_eq!(comparable(t().parameter_default("MaxReceiveCount")), "5");

    // Producers send to the orders queue.
    for binary in ["api", "sweeper", "placer"] {
        let function = t().function_for(binary);
        assert_eq!(
            t().function(&function)["Environment"]["Variables"]["ORDERS_QUEUE_URL"],
            json!({ "Ref": orders }),
            "{binary}: ORDERS_QUEUE_URL"
        );
    }
}

#[test]
fn dead_letter_queue_keeps_messages_14_days_and_longer_than_the_orders_queue() {
    let orders = t().queue_of(t().sqs_event(&t().function_for("placer")));
    let dlq = t().queue_of(t().sqs_event(&t().function_for("alerter")));
    let dlq_retention = t().number(&t().resource(&dlq)["Properties"]["MessageRetentionPeriod"]);
    assert_eq!(dlq_retention, 14.0 * 24.0 * 3600.0);
    // A dead letter keeps its original enqueue time, so the DLQ must keep messages longer.
    let orders_retention = t().resource(&orders)["Properties"]
        .get("MessageRetentionPeriod")
        .map(|v| t().number(v))
        .unwrap_or(345_600.0);
    assert!(orders_retention < dlq_retention);
}

#[test]
fn both_queues_are_encrypted() {
    let queues: Vec<_> = t().of_type("AWS::SQS::Queue").collect();
    assert_eq!(queues.len(), 2);
    for (name, queue) in queues {
        let properties = &queue["Properties"];
        assert!(
            is_true(&properties["SqsManagedSseEnabled"])
                || properties.get("KmsMasterKeyId").is_some(),
            "{name} has no server-side encryption"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Alarms, topic, dashboard
// ---------------------------------------------------------------------------------------------

#[test]
fn every_alarm_notifies_the_alert_topic_and_treats_missing_data_as_not_breaching() {
    let topic = json!({ "Ref": t().alert_topic() });
    let alarms: Vec<_> = t().of_type("AWS::CloudWatch::Alarm").collect();
    assert!(!alarms.is_empty());
    for (name, alarm) in &alarms {
        let properties = &alarm["Properties"];
        let actions = properties["AlarmActions"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no AlarmActions"));
        assert!(actions.contains(&topic), "{name} does not notify {topic}");
        assert_eq!(properties["TreatMissingData"], "notBreaching", "{name}");
    }

    // The alarms the design asks for.
    let watches = |namespace: &str, metric: &str, dimension: &Value| {
        alarms.iter().any(|(_, alarm)| {
            let p = &alarm["Properties"];
            p["Namespace"] == namespace
                && p["MetricName"] == metric
                && p["Dimensions"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|d| &d["Value"] == dimension))
        })
    };
    let fn_ref = |binary: &str| json!({ "Ref": t().function_for(binary) });
    let dlq = t().queue_of(t().sqs_event(&t().function_for("alerter")));
    let api = t()
        .of_type("AWS::Serverless::HttpApi")
        .next()
        .expect("an HTTP API")
        .0
        .clone();
    assert!(
        watches("AWS/Lambda", "Errors", &fn_ref("alerter")),
        "alerter errors"
    );
    assert!(
        watches("AWS/Lambda", "Errors", &fn_ref("placer")),
        "placer errors"
    );
    assert!(
        watches(
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            &json!({ "Fn::GetAtt": [dlq, "QueueName"] })
        ),
        "age of the DLQ's oldest message"
    );
    assert!(
        watches("AWS/ApiGateway", "5xx", &json!({ "Ref": api })),
        "api 5xx"
    );
}

#[test]
fn alert_topic_has_an_email_subscription_from_a_parameter() {
    let topic = t().alert_topic();
    let subscription = t()
        .of_type("AWS::SNS::Subscription")
        .find(|(_, s)| s["Properties"]["TopicArn"] == json!({ "Ref": topic }))
        .expect("a subscription to the alert topic")
        .1;
    assert_eq!(subscription["Properties"]["Protocol"], "email");
    let parameter = subscription["Properties"]["Endpoint"]["Ref"]
        .as_str()
        .expect("the e-mail address is a parameter");
    assert!(t().root["Parameters"].get(parameter).is_some());
}

#[test]
fn dashboard_shows_the_emf_metrics_and_the_dlq() {
    use order_shared::telemetry::metrics::*;
    let (_, dashboard) = t()
        .of_type("AWS::CloudWatch::Dashboard")
        .next()
        .expect("a dashboard");
    let body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("DashboardBody is !Sub");
    // After substitution the body must be valid JSON.
    let substituted = regex_lite_sub(body);
    let parsed: Value = serde_json::from_str(&substituted)
        .unwrap_or_else(|e| panic!("dashboard body is not JSON: {e}\n{substituted}"));
    let metrics: Vec<Vec<String>> = parsed["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["properties"]["metrics"].as_array())
        .flatten()
        .map(|m| {
            m.as_array()
                .unwrap()
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .collect();
    let has = |namespace: &str, metric: &str| {
        metrics.iter().any(|m| {
            m.first().map(String::as_str) == Some(namespace)
                && m.get(1).map(String::as_str) == Some(metric)
        })
    };
    for metric in [
        ORDERS_ACCEPTED,
        ORDERS_PLACED,
        ORDERS_REJECTED,
        ORDERS_FAILED,
        PLACEMENT_ATTEMPTS,
        EXCHANGE_LATENCY_MS,
    ] {
        assert!(
            has(NAMESPACE, metric),
            "dashboard lacks {NAMESPACE}/{metric}"
        );
    }
    let dlq = t().queue_of(t().sqs_event(&t().function_for("alerter")));
    let dlq_name = format!("${{{dlq}.QueueName}}");
    for metric in [
        "ApproximateNumberOfMessagesVisible",
        "ApproximateAgeOfOldestMessage",
    ] {
        assert!(
            body.contains(&format!(
                "\"AWS/SQS\", \"{metric}\", \"QueueName\", \"{dlq_name}\""
            )),
            "dashboard lacks the DLQ's {metric}"
        );
    }
}

/// Replaces `${...}` references of a `Fn::Sub` string with a placeholder.
fn regex_lite_sub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closing brace") + start;
        out.push_str("sub");
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------------------------
// Functions
// ---------------------------------------------------------------------------------------------

#[test]
fn the_five_functions_are_built_by_cargo_lambda_from_the_workspace() {
    let functions = t().functions_by_binary();
    assert_eq!(
        functions
            .keys()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        FUNCTION_BINARIES.into_iter().collect(),
    );
    for (binary, name) in &functions {
        let resource = t().resource(name);
        assert_eq!(
            resource["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{name}"
        );
        // CodeUri is the workspace root (relative to infra/), where cargo-lambda selects the
        // binary with --bin.
        let code_uri = t().function(name)["CodeUri"].as_str().unwrap().to_owned();
        assert_eq!(code_uri.trim_end_matches('/'), "..", "{name}: CodeUri");
        let manifest = std::path::Path::new(WORKSPACE)
            .join("functions")
            .join(binary)
            .join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
        assert!(
            text.contains(&format!("name = \"{binary}\"")),
            "{} does not define the `{binary}` binary",
            manifest.display()
        );
    }
}

#[test]
fn every_function_is_traced_arm64_al2023_sized_and_has_a_log_group_with_retention() {
    for name in t().functions_by_binary().values() {
        let p = t().function(name);
        assert_eq!(p["Tracing"], "Active", "{name}: X-Ray tracing");
        assert_eq!(p["Runtime"], "provided.al2023", "{name}: runtime");
        assert_eq!(p["Handler"], "bootstrap", "{name}: handler");
        assert_eq!(
            t().resolve(&p["Architectures"]),
            json!(["arm64"]),
            "{name}: architecture (with default parameters)"
        );
        assert!(
            p.get("MemorySize").is_some(),
            "{name}: MemorySize chosen on purpose"
        );
        assert!(
            p.get("Timeout").is_some(),
            "{name}: Timeout chosen on purpose"
        );
        assert!(
            p["VpcConfig"]["SecurityGroupIds"].is_array(),
            "{name}: in the VPC"
        );

        let log_group_name = json!({ "Fn::Sub": format!("/aws/lambda/${{{name}}}") });
        let (group, log_group) = t()
            .of_type("AWS::Logs::LogGroup")
            .find(|(_, g)| g["Properties"]["LogGroupName"] == log_group_name)
            .unwrap_or_else(|| panic!("{name} has no log group /aws/lambda/${{{name}}}"));
        let retention = t().number(&log_group["Properties"]["RetentionInDays"]);
        assert!(retention > 0.0, "{group}: retention");

        // The function's name is fixed so that its role can be scoped to its log group.
        let function_name = t().resource(name)["Properties"]["FunctionName"]["Fn::Sub"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: FunctionName !Sub"))
            .to_owned();
        assert!(function_name.starts_with("${AWS::StackName}-"), "{name}");
    }
}

/// Every IAM statement in the template, with where it is.
fn iam_statements() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut push_document = |owner: String, document: &Value| {
        let statements = match &document["Statement"] {
            Value::Array(items) => items.clone(),
            Value::Null => vec![],
            single => vec![single.clone()],
        };
        for statement in statements {
            out.push((owner.clone(), statement));
        }
    };
    for (name, resource) in t().resources() {
        let properties = &resource["Properties"];
        match resource["Type"].as_str().unwrap() {
            "AWS::IAM::Role" => {
                for policy in properties["Policies"].as_array().into_iter().flatten() {
                    push_document(name.clone(), &policy["PolicyDocument"]);
                }
            }
            "AWS::IAM::ManagedPolicy" | "AWS::IAM::Policy" | "AWS::IAM::RolePolicy" => {
                push_document(name.clone(), &properties["PolicyDocument"]);
            }
            "AWS::Serverless::Function" => {
                for policy in properties["Policies"].as_array().into_iter().flatten() {
                    if policy.get("Statement").is_some() {
                        push_document(name.clone(), policy);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn no_iam_statement_grants_a_wildcard_action() {
    let statements = iam_statements();
    assert!(statements.len() > 10, "found the roles' statements");
    for (owner, statement) in &statements {
        let actions = match &statement["Action"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items
                .iter()
                .map(|a| a.as_str().unwrap().to_owned())
                .collect(),
            other => panic!("{owner}: Action {other}"),
        };
        for action in actions {
            assert!(!action.contains('*'), "{owner}: wildcard action {action}");
        }
        assert!(statement.get("NotAction").is_none(), "{owner}: NotAction");
        // Resource "*" only where the service has no resource-level permissions.
        if statement["Resource"] == "*" {
            let sid = statement["Sid"].as_str().unwrap_or_default();
            assert!(
                ["LambdaVpcEnis", "XRay"].contains(&sid),
                "{owner}: statement {statement} is not scoped to the stack's resources"
            );
        }
    }
}

#[test]
fn every_function_has_its_own_least_privilege_role() {
    let mut roles = BTreeSet::new();
    for name in t().functions_by_binary().values() {
        let role = t().resource(name)["Properties"]["Role"]["Fn::GetAtt"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: Role is !GetAtt <role>.Arn"))[0]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(t().resource(&role)["Type"], "AWS::IAM::Role");
        assert!(roles.insert(role.clone()), "{name} shares role {role}");
        // No managed policy that could create log groups (they are created by the stack).
        for arn in t().resource(&role)["Properties"]["ManagedPolicyArns"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert!(arn.get("Ref").is_some(), "{role}: AWS-managed policy {arn}");
        }
    }
    let allowed = |role: &str, action: &str| {
        iam_statements().iter().any(|(owner, s)| {
            owner == role
                && match &s["Action"] {
                    Value::String(a) => a == action,
                    Value::Array(items) => items.contains(&json!(action)),
                    _ => false,
                }
        })
    };
    let role_of = |binary: &str| {
        t().resource(&t().function_for(binary))["Properties"]["Role"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(allowed(&role_of("api"), "sqs:SendMessage"));
    assert!(allowed(&role_of("sweeper"), "sqs:SendMessage"));
    assert!(allowed(&role_of("placer"), "sqs:ChangeMessageVisibility"));
    assert!(allowed(&role_of("placer"), "sqs:DeleteMessage"));
    assert!(allowed(&role_of("alerter"), "sns:Publish"));
    assert!(!allowed(&role_of("api"), "sns:Publish"));
    for binary in FUNCTION_BINARIES {
        assert!(
            allowed(&role_of(binary), "secretsmanager:GetSecretValue"),
            "{binary}"
        );
        assert!(allowed(&role_of(binary), "logs:PutLogEvents"), "{binary}");
        assert!(
            !allowed(&role_of(binary), "logs:CreateLogGroup"),
            "{binary}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration: every variable a function needs at start-up is set, and the values pass the
// functions' own start-up validation.
// ---------------------------------------------------------------------------------------------

/// The variables each function requires at start-up besides its database source.
const REQUIRED: [(&str, &[&str]); 5] = [
    ("api", &["ORDERS_QUEUE_URL", "API_KEY_PEPPER_SECRET_ARN"]),
    ("placer", &["ORDERS_QUEUE_URL", "EXCHANGE_BASE_URL"]),
    ("alerter", &["EXCHANGE_BASE_URL", "ALERT_TOPIC_ARN"]),
    ("sweeper", &["ORDERS_QUEUE_URL"]),
    ("migrator", &[]),
];

#[test]
fn every_function_gets_the_variables_it_requires_at_start_up() {
    for (binary, required) in REQUIRED {
        let function = t().function_for(binary);
        let raw = t().function(&function)["Environment"]["Variables"].clone();
        for name in required {
            assert!(
                raw.get(name).is_some(),
                "{binary}: required variable {name} is not set"
            );
        }
        // Exactly one database source: the RDS secret in AWS (DATABASE_URL is for local runs).
        assert!(
            raw.get("DATABASE_SECRET_ARN").is_some(),
            "{binary}: DATABASE_SECRET_ARN"
        );
        assert!(
            raw.get("DATABASE_URL").is_none(),
            "{binary}: DATABASE_URL must not be set in AWS"
        );
        let env = t().environment(&function);
        for name in required.iter().chain(&["DATABASE_SECRET_ARN"]) {
            assert!(
                !env[*name].is_empty(),
                "{binary}: {name} is empty by default"
            );
        }
        assert_eq!(env["DATABASE_TLS"], "verify-full", "{binary}: verified TLS");
        assert!(
            !env["DATABASE_HOST"].is_empty(),
            "{binary}: DATABASE_HOST (the proxy)"
        );
    }
    let api = t().environment(&t().function_for("api"));
    assert_eq!(api["AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH"], "true");
    assert_eq!(api["DATABASE_POOL_SIZE"], "2");
}

#[test]
fn template_environments_pass_the_functions_start_up_validation() {
    let env = |binary: &str| env_lookup(t().environment(&t().function_for(binary)));
    let api = ApiConfig::from_env(&env("api")).expect("api configuration");
    assert_eq!(api.enqueue_timeout.as_millis(), 1000);
    PlacerConfig::from_env(&env("placer")).expect("placer configuration");
    let alerter = AlerterConfig::from_env(&env("alerter")).expect("alerter configuration");
    assert!(
        alerter.exchange.api_key_secret_arn.is_some(),
        "alerter: exchange key secret"
    );
    let sweeper = SweeperConfig::from_env(&env("sweeper")).expect("sweeper configuration");
    // The sweeper finishes a run before its claims expire and before the next run.
    let timeout = t().number(&t().function(&t().function_for("sweeper"))["Timeout"]);
    assert!(timeout < sweeper.sweep.claim_for.as_secs_f64());
    env("migrator")
        .database(1)
        .expect("migrator database configuration");
    let placer = PlacerConfig::from_env(&env("placer")).unwrap();
    assert!(
        placer.exchange.api_key_secret_arn.is_some(),
        "placer: exchange key secret"
    );
}

#[test]
fn only_the_api_reads_the_generated_api_key_pepper() {
    let secret = t().resource("ApiKeyPepperSecret");
    assert_eq!(secret["Type"], "AWS::SecretsManager::Secret");
    let generate = &secret["Properties"]["GenerateSecretString"];
    assert!(
        t().number(&generate["PasswordLength"]) >= 32.0,
        "at least KeyHasher::MIN_PEPPER_BYTES"
    );
    let pepper_ref = json!({ "Ref": "ApiKeyPepperSecret" });
    for (binary, name) in t().functions_by_binary() {
        let variables = t().function(&name)["Environment"]["Variables"].clone();
        let role = t().resource(&name)["Properties"]["Role"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap()
            .to_owned();
        let reads_pepper = iam_statements().iter().any(|(owner, s)| {
            owner == &role
                && s["Action"] == json!("secretsmanager:GetSecretValue")
                && match &s["Resource"] {
                    Value::Array(items) => items.contains(&pepper_ref),
                    other => *other == pepper_ref,
                }
        });
        if binary == "api" {
            assert_eq!(
                t().resolve(&variables["API_KEY_PEPPER_SECRET_ARN"]),
                pepper_ref
            );
            assert!(reads_pepper, "api: may read the pepper");
        } else {
            assert!(
                variables.get("API_KEY_PEPPER_SECRET_ARN").is_none(),
                "{binary}"
            );
            assert!(!reads_pepper, "{binary}: must not read the pepper");
        }
    }
    assert_eq!(
        t().root["Outputs"]["ApiKeyPepperSecretArn"]["Value"],
        pepper_ref
    );
}

#[test]
fn functions_connect_to_the_rds_proxy_and_read_the_stacks_secrets() {
    let proxy = t()
        .of_type("AWS::RDS::DBProxy")
        .next()
        .expect("an RDS Proxy")
        .0
        .clone();
    for name in t().functions_by_binary().values() {
        let variables = t().function(name)["Environment"]["Variables"].clone();
        assert_eq!(
            t().resolve(&variables["DATABASE_HOST"]),
            json!({ "Fn::GetAtt": [proxy, "Endpoint"] }),
            "{name}: DATABASE_HOST"
        );
        assert_eq!(
            t().resolve(&variables["DATABASE_SECRET_ARN"]),
            json!({ "Ref": "DatabaseSecret" }),
            "{name}: DATABASE_SECRET_ARN"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Database, network, migrations, API, outputs
// ---------------------------------------------------------------------------------------------

#[test]
fn database_is_snapshotted_on_delete_protected_encrypted_and_tls_only() {
    let (name, database) = t()
        .of_type("AWS::RDS::DBInstance")
        .next()
        .expect("an RDS instance");
    assert_eq!(database["DeletionPolicy"], "Snapshot", "{name}");
    assert_eq!(database["UpdateReplacePolicy"], "Snapshot", "{name}");
    let p = &database["Properties"];
    assert!(
        is_true(&t().resolve(&p["DeletionProtection"])),
        "{name}: deletion protection"
    );
    assert!(is_true(&p["StorageEncrypted"]), "{name}: encrypted");
    assert!(!is_true(&p["PubliclyAccessible"]), "{name}: private");
    for property in ["MultiAZ", "BackupRetentionPeriod"] {
        assert!(
            p[property].get("Ref").is_some(),
            "{name}: {property} is a parameter"
        );
    }
    assert!(t().number(&p["BackupRetentionPeriod"]) >= 1.0);
    let group = p["DBParameterGroupName"]["Ref"].as_str().unwrap();
    assert_eq!(
        t().resource(group)["Properties"]["Parameters"]["rds.force_ssl"],
        "1",
        "TLS enforced by the database"
    );
    let (proxy, resource) = t()
        .of_type("AWS::RDS::DBProxy")
        .next()
        .expect("an RDS Proxy");
    assert!(
        is_true(&resource["Properties"]["RequireTLS"]),
        "{proxy}: RequireTLS"
    );
    // Credentials come from a secret, never from a literal.
    assert!(
        p["MasterUserPassword"]["Fn::Sub"]
            .as_str()
            .is_some_and(|s| s.starts_with("{{resolve:secretsmanager:")),
        "{name}: password from Secrets Manager"
    );
}

#[test]
fn network_has_the_endpoints_and_a_route_to_the_exchange() {
    let endpoints: BTreeMap<String, String> = t()
        .of_type("AWS::EC2::VPCEndpoint")
        .map(|(_, e)| {
            let service = e["Properties"]["ServiceName"]["Fn::Sub"]
                .as_str()
                .unwrap()
                .rsplit('.')
                .next()
                .unwrap()
                .to_owned();
            (
                service,
                e["Properties"]["VpcEndpointType"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(endpoints.get("s3").map(String::as_str), Some("Gateway"));
    for service in ["sqs", "sns", "secretsmanager"] {
        assert_eq!(
            endpoints.get(service).map(String::as_str),
            Some("Interface"),
            "{service}"
        );
    }
    assert!(
        t().of_type("AWS::EC2::NatGateway").next().is_some(),
        "NAT gateway"
    );
    assert!(
        t().condition("CreateNatGateway"),
        "NAT gateway on by default"
    );
    assert!(t().condition("CreateVpc") && t().condition("CreateEndpoints"));
    assert!(t().condition("CreateDatabase"));
}

#[test]
fn migrations_run_through_the_migrator_custom_resource_on_every_code_change() {
    let migrator = t().function_for("migrator");
    let (name, resource) = t()
        .of_type("Custom::Migrations")
        .next()
        .expect("a Custom::Migrations resource");
    let p = &resource["Properties"];
    assert_eq!(
        p["ServiceToken"],
        json!({ "Fn::GetAtt": [migrator, "Arn"] })
    );
    // A property that changes with each published version makes CloudFormation send Update.
    assert!(
        t().resource(&migrator)["Properties"]["AutoPublishAlias"].is_string(),
        "{migrator}: AutoPublishAlias"
    );
    assert!(
        p.as_object()
            .unwrap()
            .values()
            .any(|v| v == &json!({ "Ref": format!("{migrator}.Version") })),
        "{name} must reference {migrator}.Version"
    );
    // The other functions start only once the schema is migrated.
    for binary in ["api", "placer", "alerter", "sweeper"] {
        let function = t().function_for(binary);
        let depends = &t().resource(&function)["DependsOn"];
        assert!(
            depends == &json!(name) || depends.as_array().is_some_and(|d| d.contains(&json!(name))),
            "{function} must depend on {name}"
        );
    }
}

#[test]
fn http_api_serves_the_routes_with_throttling_and_access_logs() {
    let api = t().function_for("api");
    let routes: BTreeSet<(String, String)> = t()
        .events(&api, "HttpApi")
        .into_iter()
        .map(|e| {
            (
                e["Method"].as_str().unwrap().to_owned(),
                e["Path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for route in [
        ("POST", "/orders"),
        ("GET", "/orders"),
        ("GET", "/orders/{id}"),
        ("GET", "/health"),
        ("GET", "/openapi.json"),
    ] {
        assert!(
            routes.contains(&(route.0.into(), route.1.into())),
            "route {route:?} missing"
        );
    }
    let (_, http_api) = t().of_type("AWS::Serverless::HttpApi").next().unwrap();
    let p = &http_api["Properties"];
    assert!(p["DefaultRouteSettings"]["ThrottlingRateLimit"].is_object());
    assert!(p["DefaultRouteSettings"]["ThrottlingBurstLimit"].is_object());
    assert!(p["AccessLogSettings"]["DestinationArn"].is_object());
}

#[test]
fn sweeper_runs_on_a_schedule() {
    let sweeper = t().function_for("sweeper");
    let schedules: Vec<_> = ["ScheduleV2", "Schedule"]
        .into_iter()
        .flat_map(|kind| t().events(&sweeper, kind))
        .collect();
    assert_eq!(schedules.len(), 1);
    assert_eq!(schedules[0]["ScheduleExpression"], "rate(1 minute)");
}

#[test]
fn outputs_include_the_api_url_queue_urls_topic_and_dashboard() {
    let outputs = t().root["Outputs"].as_object().expect("Outputs");
    for name in [
        "ApiUrl",
        "OrdersQueueUrl",
        "DeadLetterQueueUrl",
        "AlertTopicArn",
        "DashboardUrl",
    ] {
        assert!(outputs.contains_key(name), "output {name} missing");
    }
    assert_eq!(
        outputs["AlertTopicArn"]["Value"],
        json!({ "Ref": t().alert_topic() })
    );
}

#[test]
fn every_lint_waiver_is_justified() {
    let mut places = vec![("template".to_owned(), &t().root["Metadata"])];
    for (name, resource) in t().resources() {
        places.push((name.clone(), &resource["Metadata"]));
    }
    let mut waivers = 0;
    for (owner, metadata) in places {
        for check in metadata["cfn-lint"]["config"]["ignore_checks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let check = check.as_str().unwrap();
            let reason = metadata["WaiverReasons"][check]
                .as_str()
                .unwrap_or_default();
            assert!(
                reason.split_whitespace().count() >= 8,
                "{owner}: waiver of {check} needs a reason under Metadata.WaiverReasons.{check}"
            );
            waivers += 1;
        }
    }
    assert!(waivers > 0);
}
