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

use order_shared::config::{
    AlerterConfig, ApiConfig, Env, IngesterConfig, LiveConnectConfig, LiveFanoutConfig,
    PlacerConfig, SweeperConfig,
};
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
        // A function's own `!Ref AWS::NoValue` wins over the Globals value (SAM merges an
        // intrinsic as a plain value) and CloudFormation then drops the property or variable.
        let no_value = json!({ "Ref": "AWS::NoValue" });
        merged_object.retain(|_, v| *v != no_value);
        if let Some(variables) = merged_object
            .get_mut("Environment")
            .and_then(|e| e["Variables"].as_object_mut())
        {
            variables.retain(|_, v| *v != no_value);
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
            .map(|(k, v)| (k.clone(), self.process_text(v)))
            .collect()
    }

    /// A value as a process sees it in its environment: parameters resolved; a `!Sub` URL
    /// rendered as it will be deployed (`deployed_sub`), so that the code's own validation
    /// reads a real shape; anything else only known at deploy time (ARNs, attributes) a
    /// non-empty placeholder naming it.
    fn process_text(&self, value: &Value) -> String {
        match self.resolve(value) {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Object(o) if o.len() == 1 && o.get("Fn::Sub").is_some_and(Value::is_string) => {
                self.deployed_sub(o["Fn::Sub"].as_str().unwrap())
            }
            other => format!("<deploy-time {other}>"),
        }
    }

    /// A `!Sub` string as a deploy in us-east-1 renders it: pseudo parameters, a stage's
    /// `StageName`, any other resource's id as a lower-case stand-in (`abc0<name>`).
    fn deployed_sub(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').expect("closing brace") + start;
            let name = &rest[start + 2..end];
            let value = match name {
                "AWS::Region" => "us-east-1".to_owned(),
                "AWS::URLSuffix" => "amazonaws.com".to_owned(),
                "AWS::Partition" => "aws".to_owned(),
                "AWS::AccountId" => "123456789012".to_owned(),
                "AWS::StackName" => "orders-dev".to_owned(),
                resource => {
                    let r = &self.resources()[resource];
                    if r["Type"] == "AWS::ApiGatewayV2::Stage" {
                        r["Properties"]["StageName"].as_str().unwrap().to_owned()
                    } else {
                        format!("abc0{}", resource.to_lowercase())
                    }
                }
            };
            out.push_str(&value);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
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

const FUNCTION_BINARIES: [&str; 7] = [
    "api",
    "placer",
    "alerter",
    "sweeper",
    "migrator",
    "docs",
    "live-connect",
];
/// The functions that connect to the database, in the VPC; all but `docs`, which serves the
/// reference page from its own memory.
const DATABASE_FUNCTIONS: [&str; 6] = [
    "api",
    "placer",
    "alerter",
    "sweeper",
    "migrator",
    "live-connect",
];

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
        // Except where no data is the failure: ECS publishes a service's metrics only while a
        // task runs (ingester::check_ingester_alarms).
        let expected = if properties["Namespace"] == "AWS/ECS" {
            "breaching"
        } else {
            "notBreaching"
        };
        assert_eq!(properties["TreatMissingData"], expected, "{name}");
    }

    // The alarms the design asks for (reading the metric directly or in metric math).
    let reads = |p: &Value, namespace: &str, metric: &str, dimension: &Value| {
        p["Namespace"] == namespace
            && p["MetricName"] == metric
            && p["Dimensions"]
                .as_array()
                .is_some_and(|d| d.iter().any(|d| &d["Value"] == dimension))
    };
    let watches = |namespace: &str, metric: &str, dimension: &Value| {
        alarms.iter().any(|(_, alarm)| {
            let p = &alarm["Properties"];
            reads(p, namespace, metric, dimension)
                || p["Metrics"].as_array().is_some_and(|queries| {
                    queries
                        .iter()
                        .any(|q| reads(&q["MetricStat"]["Metric"], namespace, metric, dimension))
                })
        })
    };
    let fn_ref = |binary: &str| json!({ "Ref": t().function_for(binary) });
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
    // The DLQ's alarm (metric math), the orders queue's age and the parked orders have their
    // own checks below.
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
    let body = dashboard_body(dashboard, true);
    // After substitution the body must be valid JSON, with and without the stack's database
    // (whose widgets and alarms come in through the `!Sub` variables).
    let without_database = dashboard_body(dashboard, false);
    for body in [&body, &without_database] {
        let substituted = regex_lite_sub(body);
        serde_json::from_str::<Value>(&substituted)
            .unwrap_or_else(|e| panic!("dashboard body is not JSON: {e}\n{substituted}"));
    }
    let body = body.as_str();
    let parsed: Value = serde_json::from_str(&regex_lite_sub(body)).unwrap();
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
        ORDERS_EXPIRED,
        ORDERS_CANCELED,
        ORDERS_PARKED,
        PARKED_ORDERS,
        STUCK_EXECUTIONS,
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
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateAgeOfOldestMessage",
    ] {
        assert!(
            body.contains(&format!(
                "\"AWS/SQS\", \"{metric}\", \"QueueName\", \"{dlq_name}\""
            )),
            "dashboard lacks the DLQ's {metric}"
        );
    }
    // Every alarm is on the dashboard's alarm widget.
    for (alarm, _) in t().of_type("AWS::CloudWatch::Alarm") {
        assert!(
            body.contains(&format!("\"${{{alarm}.Arn}}\"")),
            "dashboard lacks the alarm {alarm}"
        );
    }
}

/// The dashboard's body with the variables of its `!Sub` (`[template, {variable: value}]` form)
/// filled in, each `!If` taken as if the condition were `conditions_hold`; references to
/// parameters and resources stay `${...}`.
fn dashboard_body(dashboard: &Value, conditions_hold: bool) -> String {
    let sub = &dashboard["Properties"]["DashboardBody"]["Fn::Sub"];
    if let Some(body) = sub.as_str() {
        return body.to_owned();
    }
    let mut body = sub[0].as_str().expect("DashboardBody is !Sub").to_owned();
    for (name, value) in sub[1].as_object().expect("the !Sub variables") {
        let value = match value.get("Fn::If") {
            Some(branches) => &branches[if conditions_hold { 1 } else { 2 }],
            None => value,
        };
        let text = value
            .get("Fn::Sub")
            .unwrap_or(value)
            .as_str()
            .unwrap_or_else(|| panic!("dashboard variable {name}: a string or !Sub string"));
        body = body.replace(&format!("${{{name}}}"), text);
    }
    body
}

/// Replaces `${...}` references of a `Fn::Sub` string with a placeholder: `sub` inside a JSON
/// string, `0` outside one (a number such as an alarm threshold).
fn regex_lite_sub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closing brace") + start;
        out.push_str(if in_json_string(&out) { "sub" } else { "0" });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Does `json_prefix` end inside a string literal?
fn in_json_string(json_prefix: &str) -> bool {
    let mut inside = false;
    let mut escaped = false;
    for c in json_prefix.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if inside => escaped = true,
            '"' => inside = !inside,
            _ => {}
        }
    }
    inside
}

// ---------------------------------------------------------------------------------------------
// Functions
// ---------------------------------------------------------------------------------------------

#[test]
fn the_seven_functions_are_built_by_cargo_lambda_from_the_workspace() {
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

/// scripts/validate-infra.sh builds every function's binary in one cargo invocation before
/// `sam build` (which then only copies them): a function missing from that list would still
/// build, one cargo run at a time, but a binary there that no function runs is a stale list.
#[test]
fn validate_infra_prebuilds_exactly_the_function_binaries() {
    let path = std::path::Path::new(WORKSPACE).join("scripts/validate-infra.sh");
    let script = std::fs::read_to_string(&path).expect("scripts/validate-infra.sh");
    let line = script
        .lines()
        .find(|l| l.trim_start().starts_with("--bin api "))
        .expect("the prebuild's --bin list");
    let binaries: BTreeSet<&str> = line
        .split_whitespace()
        .filter(|word| *word != "--bin")
        .collect();
    assert_eq!(binaries, FUNCTION_BINARIES.into_iter().collect());
}

#[test]
fn every_function_is_traced_arm64_al2023_sized_and_has_a_log_group_with_retention() {
    for (binary, name) in &t().functions_by_binary() {
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
        if DATABASE_FUNCTIONS.contains(&binary.as_str()) {
            assert!(
                p["VpcConfig"]["SecurityGroupIds"].is_array(),
                "{name}: in the VPC"
            );
        } else {
            assert!(
                p.get("VpcConfig").is_none(),
                "{name}: outside the VPC (it reaches nothing)"
            );
        }

        // The group it logs into (LoggingConfig; deploy_review checks its name and creation).
        let group = p["LoggingConfig"]["LogGroup"]["Ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no LoggingConfig.LogGroup"));
        let log_group = t().resource(group);
        assert_eq!(log_group["Type"], "AWS::Logs::LogGroup", "{name}");
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
fn iam_statements(t: &Template) -> Vec<(String, Value)> {
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
    for (name, resource) in t.resources() {
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
    let statements = iam_statements(t());
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
                ["LambdaVpcEnis", "XRay", "EcrAuthorizationToken"].contains(&sid),
                "{owner}: statement {statement} is not scoped to the stack's resources"
            );
            if sid == "EcrAuthorizationToken" {
                assert_eq!(statement["Action"], "ecr:GetAuthorizationToken", "{owner}");
            }
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
        iam_statements(t()).iter().any(|(owner, s)| {
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
    assert!(allowed(&role_of("sweeper"), "sns:Publish"));
    for binary in ["api", "placer", "migrator"] {
        assert!(!allowed(&role_of(binary), "sns:Publish"), "{binary}");
    }
    for binary in DATABASE_FUNCTIONS {
        assert!(
            allowed(&role_of(binary), "secretsmanager:GetSecretValue"),
            "{binary}"
        );
    }
    for binary in FUNCTION_BINARIES {
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
const REQUIRED: [(&str, &[&str]); 6] = [
    ("api", &["ORDERS_QUEUE_URL", "API_KEY_PEPPER_SECRET_ARN"]),
    ("placer", &["ORDERS_QUEUE_URL", "EXCHANGE_BASE_URL"]),
    ("alerter", &["EXCHANGE_BASE_URL", "ALERT_TOPIC_ARN"]),
    ("sweeper", &["ORDERS_QUEUE_URL", "ALERT_TOPIC_ARN"]),
    ("migrator", &[]),
    ("live-connect", &["API_KEY_PEPPER_SECRET_ARN"]),
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
    let live_connect =
        LiveConnectConfig::from_env(&env("live-connect")).expect("live-connect configuration");
    assert_eq!(live_connect.database.pool_size, 1, "live-connect: pool");
    let placer = PlacerConfig::from_env(&env("placer")).unwrap();
    assert!(
        placer.exchange.api_key_secret_arn.is_some(),
        "placer: exchange key secret"
    );
}

#[test]
fn only_the_key_checking_functions_read_the_generated_api_key_pepper() {
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
        let reads_pepper = iam_statements(t()).iter().any(|(owner, s)| {
            owner == &role
                && s["Action"] == json!("secretsmanager:GetSecretValue")
                && match t().resolve(&s["Resource"]) {
                    Value::Array(items) => items.contains(&pepper_ref),
                    other => other == pepper_ref,
                }
        });
        // The api, and live-connect, which checks a WebSocket's key at $connect the same way.
        if ["api", "live-connect"].contains(&binary.as_str()) {
            assert_eq!(
                t().resolve(&variables["API_KEY_PEPPER_SECRET_ARN"]),
                pepper_ref,
                "{binary}"
            );
            assert!(reads_pepper, "{binary}: may read the pepper");
        } else {
            assert!(
                variables.get("API_KEY_PEPPER_SECRET_ARN").is_none(),
                "{binary}"
            );
            assert!(!reads_pepper, "{binary}: must not read the pepper");
        }
    }
    assert_eq!(
        t().resolve(&t().root["Outputs"]["ApiKeyPepperSecretArn"]["Value"]),
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
    for binary in DATABASE_FUNCTIONS {
        let name = &t().function_for(binary);
        let variables = t().function(name)["Environment"]["Variables"].clone();
        assert_eq!(
            t().resolve(&variables["DATABASE_HOST"]),
            json!({ "Fn::GetAtt": [proxy, "Endpoint"] }),
            "{name}: DATABASE_HOST"
        );
        // The migrator connects as the owner; every other function as the application role
        // (deploy_review::check_functions_connect_as_the_application_role).
        let secret = if t().function_for("migrator") == *name {
            "DatabaseSecret"
        } else {
            "AppDatabaseSecret"
        };
        assert_eq!(
            t().resolve(&variables["DATABASE_SECRET_ARN"]),
            json!({ "Ref": secret }),
            "{name}: DATABASE_SECRET_ARN"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Long outages (issue #11): every variable the functions read, the operational knobs as
// parameters, PARK_FROM_RECEIVE below maxReceiveCount, the sweeper's incident alerts, and the
// three alarms. Each check takes the template, so that `checks_catch_broken_templates` below can
// prove it fails on a broken copy.
// ---------------------------------------------------------------------------------------------

type CheckResult = Result<(), String>;

/// A check of the template, and a canary for it: what breaks, the text replaced, its replacement.
type Check = fn(&Template) -> CheckResult;
type Mutation = (&'static str, &'static str, &'static str, Check);

/// Each canary: its text occurs once in `text`, the unbroken template passes its check, and the
/// template with that text replaced fails it.
fn assert_canaries_caught(text: &str, mutations: impl IntoIterator<Item = Mutation>) {
    for (what, from, to, check) in mutations {
        assert_eq!(
            text.matches(from).count(),
            1,
            "canary `{what}`: its text must occur once in the template:\n{from}"
        );
        // The unbroken template passes the same check.
        check(&Template::parse(text)).unwrap_or_else(|e| panic!("canary `{what}`: {e}"));
        let broken = Template::parse(&text.replacen(from, to, 1));
        let verdict = check(&broken);
        assert!(
            verdict.is_err(),
            "canary `{what}`: the check passed a broken template"
        );
        eprintln!("canary `{what}`: caught - {}", verdict.unwrap_err());
    }
}

macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        let holds: bool = $condition;
        if !holds {
            return Err(format!($($message)+));
        }
    };
}

/// Variables a function reads that the template leaves to the code on purpose, and why.
const LEFT_UNSET: [(&str, &str); 5] = [
    (
        "DATABASE_URL",
        "local runs only; in AWS the credentials come from DATABASE_SECRET_ARN",
    ),
    (
        "DATABASE_CA_FILE",
        "the RDS Proxy's certificate chains to Amazon Trust Services, in the built-in web PKI roots",
    ),
    (
        "API_KEY_PEPPER",
        "local runs only; in AWS the api reads API_KEY_PEPPER_SECRET_ARN",
    ),
    (
        "EXCHANGE_API_KEY",
        "local runs only; in AWS the placer, alerter and ingester read EXCHANGE_API_KEY_SECRET_ARN",
    ),
    (
        "INGESTER_ID",
        "each ingester process names itself in the lease (pid and a random id), unique per task",
    ),
];

/// The operational knobs of issue #11: template parameter, the functions that get it, the
/// variable it sets.
const KNOBS: [(&str, &[&str], &str); 7] = [
    (
        "MarketOrderTtlSeconds",
        &["api"],
        "MARKET_ORDER_TTL_SECONDS",
    ),
    ("RetryMaxSeconds", &["placer"], "RETRY_MAX_SECONDS"),
    (
        "SqsShortWaitMaxSeconds",
        &["placer"],
        "SQS_SHORT_WAIT_MAX_SECONDS",
    ),
    (
        "BreakerFailureThreshold",
        &["placer"],
        "BREAKER_FAILURE_THRESHOLD",
    ),
    ("BreakerProbeSeconds", &["placer"], "BREAKER_PROBE_SECONDS"),
    // Issue #14: the api answers with a key's order within it, the sweeper releases keys after
    // it; both read the one parameter.
    (
        "IdempotencyKeyRetentionSeconds",
        &["api", "sweeper"],
        "IDEMPOTENCY_KEY_RETENTION_SECONDS",
    ),
    (
        "AlertWindowSeconds",
        &["alerter", "sweeper"],
        "ALERT_WINDOW_SECONDS",
    ),
];

/// Runs a function's start-up configuration code on an environment; its `Debug` output (which
/// never shows secrets) lets two environments be compared.
fn start_up<F: Fn(&str) -> Option<String>>(binary: &str, env: &Env<F>) -> Result<String, String> {
    let debug = match binary {
        "api" => ApiConfig::from_env(env).map(|c| format!("{c:?}")),
        "placer" => PlacerConfig::from_env(env).map(|c| format!("{c:?}")),
        "alerter" => AlerterConfig::from_env(env).map(|c| format!("{c:?}")),
        "sweeper" => SweeperConfig::from_env(env).map(|c| format!("{c:?}")),
        // As functions/migrator/src/main.rs: the owner's database, and the application role's
        // secret when the stack manages that role.
        "migrator" => env
            .database(1)
            .map(|c| format!("{c:?} {:?}", env.application_role_secret())),
        // functions/docs/src/main.rs reads one optional setting (and RUST_LOG, for its logs).
        "docs" => env
            .optional("LIVE_UPDATES_URL")
            .map(|url| {
                url.parse::<order_shared::handlers::live_page::UpdatesEndpoint>()
                    .map(|u| u.url().to_owned())
                    .map_err(|e| order_shared::config::ConfigError::Invalid {
                        name: "LIVE_UPDATES_URL",
                        reason: e.to_string(),
                    })
            })
            .transpose()
            .map(Option::unwrap_or_default),
        "live-connect" => LiveConnectConfig::from_env(env).map(|c| format!("{c:?}")),
        // services/live-fanout, the fan-out's ECS task.
        "live-fanout" => LiveFanoutConfig::from_env(env).map(|c| format!("{c:?}")),
        // services/ingester, the ECS task.
        "ingester" => IngesterConfig::from_env(env).map(|c| format!("{c:?}")),
        other => panic!("unknown function binary {other}"),
    };
    debug.map_err(|e| format!("{binary}: {e}"))
}

/// The variables a function's start-up code reads when given `env` (in the order it asks).
fn variables_read(binary: &str, env: BTreeMap<String, String>) -> (BTreeSet<String>, CheckResult) {
    let asked = std::rc::Rc::new(std::cell::RefCell::new(BTreeSet::new()));
    let recorder = {
        let asked = asked.clone();
        Env(move |name: &str| {
            asked.borrow_mut().insert(name.to_owned());
            env.get(name).cloned().filter(|v| !v.is_empty())
        })
    };
    let outcome = start_up(binary, &recorder).map(drop);
    let asked = asked.borrow().clone();
    (asked, outcome)
}

/// Names of the variables that `shared/src/config/` reads (`env.required("X")`, `parsed`,
/// `seconds`, `millis`, `optional`, and the same through `self.`).
fn variables_in_config_source() -> BTreeSet<String> {
    let directory = std::path::Path::new(WORKSPACE).join("shared/src/config");
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(&directory).expect("shared/src/config") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        // Unit tests in the same file name variables too; only the code above them counts.
        let source = source.split("#[cfg(test)]").next().unwrap();
        for reader in ["required", "parsed", "seconds", "millis", "optional"] {
            let pattern = format!(".{reader}(");
            for (at, _) in source.match_indices(&pattern) {
                // The name may start on the next line (rustfmt breaks long calls).
                let rest = source[at + pattern.len()..].trim_start();
                let Some(rest) = rest.strip_prefix('"') else {
                    continue;
                };
                let name = &rest[..rest.find('"').expect("closing quote")];
                names.insert(name.to_owned());
            }
        }
    }
    names
}

fn check_every_variable_read_is_set(t: &Template) -> CheckResult {
    let left_unset: BTreeMap<_, _> = LEFT_UNSET.into_iter().collect();
    let mut read_by_some_function = BTreeSet::new();
    // The functions, and the ingester's task as the deploy that creates it sets it up.
    let mut processes = Vec::new();
    for binary in FUNCTION_BINARIES {
        let function = t.function_for(binary);
        processes.push((binary, function.clone(), t.environment(&function)));
    }
    let ingester = ingester::with_ingester(t);
    processes.push((
        "ingester",
        "the ingester's task".to_owned(),
        ingester::ingester_environment(&ingester)?,
    ));
    processes.push((
        "live-fanout",
        "the fan-out's task".to_owned(),
        live::fanout_environment(&ingester)?,
    ));
    for (binary, function, env) in processes {
        let (read, outcome) = variables_read(binary, env.clone());
        outcome?;
        for name in &read {
            ensure!(
                env.get(name).is_some_and(|v| !v.is_empty())
                    || left_unset.contains_key(name.as_str()),
                "{binary} ({function}) reads {name} at start-up but the template leaves it unset: \
                 set it in the function's Environment (or Globals), or add it to LEFT_UNSET with the reason"
            );
        }
        read_by_some_function.extend(read);
    }
    let in_source = variables_in_config_source();
    ensure!(
        in_source.contains("MARKET_ORDER_TTL_SECONDS") && in_source.contains("ORDERS_QUEUE_URL"),
        "the scan of shared/src/config found too little: {in_source:?}"
    );
    for name in in_source {
        ensure!(
            read_by_some_function.contains(&name),
            "shared/src/config reads {name}, but no function's start-up code asked for it with the \
             template's environment: is the setting wired into a function's config?"
        );
    }
    for (name, reason) in LEFT_UNSET {
        ensure!(
            read_by_some_function.contains(name),
            "LEFT_UNSET names {name} ({reason}), which no function reads any more"
        );
    }
    Ok(())
}

/// The bounds a parameter allows: `AllowedValues`, else `MinValue`/`MaxValue`.
fn parameter_bounds(t: &Template, name: &str) -> Result<(Option<f64>, Option<f64>), String> {
    let parameter = &t.root["Parameters"][name];
    ensure!(parameter.is_object(), "parameter {name} missing");
    let number = |v: &Value| -> f64 {
        scalar_text(v)
            .parse()
            .unwrap_or_else(|_| panic!("{name}: {v} is not a number"))
    };
    if let Some(allowed) = parameter["AllowedValues"].as_array() {
        let values: Vec<f64> = allowed.iter().map(number).collect();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        return Ok((Some(min), Some(max)));
    }
    Ok((
        parameter.get("MinValue").map(number),
        parameter.get("MaxValue").map(number),
    ))
}

fn check_number_parameters_are_bounded(t: &Template) -> CheckResult {
    for (name, parameter) in t.root["Parameters"].as_object().expect("Parameters") {
        if parameter["Type"] != "Number" {
            continue;
        }
        let (min, max) = parameter_bounds(t, name)?;
        ensure!(
            min.is_some(),
            "parameter {name} has no MinValue (or AllowedValues)"
        );
        ensure!(
            parameter["Description"]
                .as_str()
                .is_some_and(|d| d.len() > 20),
            "parameter {name} needs a description"
        );
        if let Some(default) = parameter.get("Default") {
            let default: f64 = scalar_text(default).parse().unwrap();
            ensure!(
                min.is_none_or(|min| min <= default) && max.is_none_or(|max| default <= max),
                "parameter {name}: default {default} outside [{min:?}, {max:?}]"
            );
        }
    }
    Ok(())
}

fn check_knobs_are_parameters_the_functions_accept(t: &Template) -> CheckResult {
    for (parameter, binaries, variable) in KNOBS {
        let (min, max) = parameter_bounds(t, parameter)?;
        let (Some(min), Some(max)) = (min, max) else {
            return Err(format!(
                "parameter {parameter} needs both MinValue and MaxValue"
            ));
        };
        ensure!(
            t.root["Parameters"][parameter]["Type"] == "Number",
            "parameter {parameter} is a Number"
        );
        for binary in binaries.iter().copied() {
            let function = t.function_for(binary);
            ensure!(
                t.function(&function)["Environment"]["Variables"][variable]
                    == json!({ "Ref": parameter }),
                "{binary} ({function}): {variable} must be !Ref {parameter}"
            );
            // Both ends of the range pass the function's own start-up validation.
            for bound in [min, max] {
                let mut env = t.environment(&function);
                env.insert(variable.to_owned(), format!("{bound}"));
                start_up(binary, &env_lookup(env))
                    .map_err(|e| format!("{parameter}={bound} is allowed but {e}"))?;
            }
            // The template's default is the code's default (the README's table and
            // docs/DEPLOY.md give one value).
            let with_default = start_up(binary, &env_lookup(t.environment(&function)))?;
            let mut without = t.environment(&function);
            without.remove(variable);
            ensure!(
                with_default == start_up(binary, &env_lookup(without))?,
                "{parameter}: the template's default differs from {binary}'s default for {variable}"
            );
        }
    }
    Ok(())
}

fn check_knob_bounds_make_sense(t: &Template) -> CheckResult {
    let env = |binary: &str| t.environment(&t.function_for(binary));
    let seconds = |binary: &str, variable: &str| -> f64 {
        env(binary)[variable]
            .parse()
            .unwrap_or_else(|_| panic!("{binary}: {variable} is a number"))
    };
    // MARKET_ORDER_TTL_SECONDS: up to the code's limit (30 days) and no further; long enough
    // for the sweeper to send an order whose first send failed.
    let (ttl_min, ttl_max) = parameter_bounds(t, "MarketOrderTtlSeconds")?;
    let (ttl_min, ttl_max) = (ttl_min.unwrap_or(0.0), ttl_max.unwrap_or(f64::INFINITY));
    ensure!(
        ttl_max == 30.0 * 86400.0,
        "MarketOrderTtlSeconds: MaxValue {ttl_max} must be 30 days, the longest time in force"
    );
    let grace = seconds("sweeper", "SWEEP_GRACE_SECONDS");
    ensure!(
        ttl_min >= grace,
        "MarketOrderTtlSeconds: MinValue {ttl_min} below the sweeper's grace {grace}s: every order \
         whose first send failed would expire before the sweeper sends it"
    );
    // The back-off cap is at least its base.
    let (retry_max_min, _) = parameter_bounds(t, "RetryMaxSeconds")?;
    let base = seconds("placer", "RETRY_BASE_SECONDS");
    ensure!(
        retry_max_min.unwrap_or(0.0) >= base,
        "RetryMaxSeconds: MinValue below RETRY_BASE_SECONDS {base}"
    );
    // A short wait is a visibility timeout: SQS allows 12 hours at most.
    let (_, short_max) = parameter_bounds(t, "SqsShortWaitMaxSeconds")?;
    ensure!(
        short_max.is_some_and(|m| m <= 43_200.0),
        "SqsShortWaitMaxSeconds: MaxValue above SQS's 12-hour visibility limit"
    );
    // Incidents close at a sweep: a window shorter than the interval means nothing.
    let (window_min, _) = parameter_bounds(t, "AlertWindowSeconds")?;
    let interval = sweep_interval_seconds(t);
    ensure!(
        window_min.unwrap_or(0.0) >= interval,
        "AlertWindowSeconds: MinValue below the sweep interval {interval}s"
    );
    Ok(())
}

fn check_park_from_receive_below_max_receive_count(t: &Template) -> CheckResult {
    let placer = t.function_for("placer");
    ensure!(
        t.function(&placer)["Environment"]["Variables"]
            .get("PARK_FROM_RECEIVE")
            .is_some(),
        "placer: set PARK_FROM_RECEIVE in the template, next to the queue's maxReceiveCount"
    );
    let park = PlacerConfig::from_env(&env_lookup(t.environment(&placer)))
        .map_err(|e| format!("placer: {e}"))?
        .placer
        .park_from_receive;
    ensure!(park >= 1, "PARK_FROM_RECEIVE {park}");
    let orders = t.queue_of(t.sqs_event(&placer));
    let max_receive = &t.resource(&orders)["Properties"]["RedrivePolicy"]["maxReceiveCount"];
    // Every value the stack can be deployed with, not only the default.
    let smallest = match max_receive.get("Ref").and_then(Value::as_str) {
        Some(parameter) => parameter_bounds(t, parameter)?
            .0
            .ok_or_else(|| format!("{parameter} needs a MinValue above PARK_FROM_RECEIVE"))?,
        None => t.number(max_receive),
    };
    ensure!(
        f64::from(park) < smallest && f64::from(park) < t.number(max_receive),
        "PARK_FROM_RECEIVE {park} must be below {orders}'s maxReceiveCount (at least {smallest}): \
         otherwise a message retried for a transient error reaches the DLQ instead of being parked"
    );
    Ok(())
}

fn role_of(t: &Template, binary: &str) -> String {
    t.resource(&t.function_for(binary))["Properties"]["Role"]["Fn::GetAtt"][0]
        .as_str()
        .expect("Role is !GetAtt <role>.Arn")
        .to_owned()
}

fn actions_of(statement: &Value) -> Vec<String> {
    match &statement["Action"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect(),
        _ => vec![],
    }
}

fn check_sweeper_publishes_incident_alerts_to_the_topic_only(t: &Template) -> CheckResult {
    let topic = json!({ "Ref": t.alert_topic() });
    let sweeper = t.function_for("sweeper");
    ensure!(
        t.function(&sweeper)["Environment"]["Variables"]["ALERT_TOPIC_ARN"] == topic,
        "sweeper ({sweeper}): ALERT_TOPIC_ARN must be {topic}"
    );
    let mut publishers = BTreeSet::new();
    for (owner, statement) in iam_statements(t) {
        if !actions_of(&statement).iter().any(|a| a == "sns:Publish") {
            continue;
        }
        // Least privilege: the alert topic and nothing else.
        ensure!(
            statement["Resource"] == topic && statement["Effect"] == "Allow",
            "{owner}: sns:Publish must be allowed on {topic} only, not {}",
            statement["Resource"]
        );
        publishers.insert(owner);
    }
    let expected: BTreeSet<String> = ["alerter", "sweeper"]
        .into_iter()
        .map(|b| role_of(t, b))
        .collect();
    ensure!(
        publishers == expected,
        "the roles that may publish alerts are {publishers:?}; expected the alerter's and the sweeper's {expected:?}"
    );
    Ok(())
}

fn alarms(t: &Template) -> Vec<(&String, &Value)> {
    t.of_type("AWS::CloudWatch::Alarm")
        .map(|(name, alarm)| (name, &alarm["Properties"]))
        .collect()
}

fn check_alarm_notifies(name: &str, alarm: &Value, t: &Template) -> CheckResult {
    let topic = json!({ "Ref": t.alert_topic() });
    for actions in ["AlarmActions", "OKActions"] {
        ensure!(
            alarm[actions]
                .as_array()
                .is_some_and(|a| a.contains(&topic)),
            "{name}: {actions} must notify {topic}"
        );
    }
    ensure!(
        alarm["TreatMissingData"] == "notBreaching",
        "{name}: TreatMissingData notBreaching"
    );
    Ok(())
}

/// A threshold or period count that is a parameter (so ops can tune it without editing the
/// template).
fn check_is_parameter(name: &str, property: &str, value: &Value, t: &Template) -> CheckResult {
    let parameter = value["Ref"].as_str().unwrap_or_default();
    ensure!(
        t.root["Parameters"].get(parameter).is_some(),
        "{name}: {property} must be !Ref <parameter>, is {value}"
    );
    Ok(())
}

fn dimension_is(alarm: &Value, name: &str, value: &Value) -> bool {
    alarm["Dimensions"]
        .as_array()
        .is_some_and(|d| d.iter().any(|d| d["Name"] == name && &d["Value"] == value))
}

fn check_dead_letter_alarm_counts_visible_and_in_flight(t: &Template) -> CheckResult {
    let dlq = t.queue_of(t.sqs_event(&t.function_for("alerter")));
    let queue_name = json!({ "Fn::GetAtt": [dlq, "QueueName"] });
    // The id of the metric query reading `metric` of the DLQ.
    let query_id = |metrics: &[Value], metric: &str| -> Option<String> {
        metrics.iter().find_map(|m| {
            let stat = &m["MetricStat"];
            (stat["Metric"]["Namespace"] == "AWS/SQS"
                && stat["Metric"]["MetricName"] == metric
                && dimension_is(&stat["Metric"], "QueueName", &queue_name))
            .then(|| m["Id"].as_str().unwrap_or_default().to_owned())
        })
    };
    let candidates: Vec<_> = alarms(t)
        .into_iter()
        .filter(|(_, a)| {
            a["Metrics"]
                .as_array()
                .is_some_and(|m| query_id(m, "ApproximateNumberOfMessagesVisible").is_some())
        })
        .collect();
    ensure!(
        candidates.len() == 1,
        "expected one metric-math alarm over the DLQ's ApproximateNumberOfMessagesVisible, found {}",
        candidates.len()
    );
    let (name, alarm) = candidates[0];
    let metrics = alarm["Metrics"].as_array().unwrap();
    let visible = query_id(metrics, "ApproximateNumberOfMessagesVisible").unwrap();
    let in_flight =
        query_id(metrics, "ApproximateNumberOfMessagesNotVisible").ok_or_else(|| {
            format!(
                "{name}: no query of the DLQ's ApproximateNumberOfMessagesNotVisible (in flight)"
            )
        })?;
    let returned: Vec<&Value> = metrics
        .iter()
        .filter(|m| m["ReturnData"] != json!(false))
        .collect();
    ensure!(
        returned.len() == 1,
        "{name}: exactly one query returns data (the sum); the others need ReturnData: false"
    );
    let expression = returned[0]["Expression"].as_str().unwrap_or_default();
    let terms: BTreeSet<String> = expression
        .split('+')
        .map(|term| term.trim().to_owned())
        .collect();
    ensure!(
        terms == BTreeSet::from([visible.clone(), in_flight.clone()]),
        "{name}: the alarm's expression must be `{visible} + {in_flight}`, is `{expression}`"
    );
    let threshold = t.number(&alarm["Threshold"]);
    let fires_on_one = match alarm["ComparisonOperator"].as_str() {
        Some("GreaterThanThreshold") => (0.0..1.0).contains(&threshold),
        Some("GreaterThanOrEqualToThreshold") => threshold > 0.0 && threshold <= 1.0,
        _ => false,
    };
    ensure!(
        fires_on_one,
        "{name}: must fire on a single dead letter (> 0), is {} {threshold}",
        alarm["ComparisonOperator"]
    );
    check_alarm_notifies(name, alarm, t)
}

fn check_orders_queue_age_alarm(t: &Template) -> CheckResult {
    let placer = t.function_for("placer");
    let orders = t.queue_of(t.sqs_event(&placer));
    let queue_name = json!({ "Fn::GetAtt": [orders, "QueueName"] });
    let (name, alarm) = alarms(t)
        .into_iter()
        .find(|(_, a)| {
            a["Namespace"] == "AWS/SQS"
                && a["MetricName"] == "ApproximateAgeOfOldestMessage"
                && dimension_is(a, "QueueName", &queue_name)
        })
        .ok_or_else(|| {
            format!("no alarm on the age of {orders}'s oldest message (a stuck placer)")
        })?;
    ensure!(alarm["Statistic"] == "Maximum", "{name}: Statistic Maximum");
    check_is_parameter(name, "Threshold", &alarm["Threshold"], t)?;
    // A message that is only being retried (short waits in SQS until it is parked) must not
    // look stuck.
    let settings = PlacerConfig::from_env(&env_lookup(t.environment(&placer)))
        .map_err(|e| format!("placer: {e}"))?
        .placer;
    let retrying = settings.short_wait_max.as_secs_f64()
        * f64::from(settings.park_from_receive.saturating_sub(1));
    let threshold = t.number(&alarm["Threshold"]);
    ensure!(
        threshold > retrying,
        "{name}: threshold {threshold}s would fire on a message merely waiting out its retries ({retrying}s)"
    );
    check_alarm_notifies(name, alarm, t)
}

/// The alarm on one of the sweeper's EMF gauges, checked for what every such alarm needs: the
/// metric's exact dimensions, a gauge's statistic, and a period no shorter than a sweep.
fn sweeper_gauge_alarm<'t>(
    t: &'t Template,
    metric: &str,
    meaning: &str,
) -> Result<(&'t String, &'t Value), String> {
    use order_shared::telemetry::metrics::NAMESPACE;
    let (name, alarm) = alarms(t)
        .into_iter()
        .find(|(_, a)| a["Namespace"] == NAMESPACE && a["MetricName"] == metric)
        .ok_or_else(|| format!("no alarm on {NAMESPACE}/{metric} ({meaning})"))?;
    // CloudWatch matches a metric by all of its dimensions: the sweeper's EMF line has exactly
    // one, `function` = the name its main passes to init_metrics.
    ensure!(
        alarm["Dimensions"] == json!([{ "Name": "function", "Value": "sweeper" }]),
        "{name}: Dimensions must be exactly [function = sweeper], are {}",
        alarm["Dimensions"]
    );
    let main = std::fs::read_to_string(
        std::path::Path::new(WORKSPACE).join("functions/sweeper/src/main.rs"),
    )
    .expect("functions/sweeper/src/main.rs");
    ensure!(
        main.contains("init_metrics(\"sweeper\")") && main.contains("flush_metrics("),
        "the sweeper's main must emit its metrics with function=sweeper and flush them each run"
    );
    ensure!(
        alarm["Statistic"] == "Maximum",
        "{name}: Statistic Maximum (a gauge)"
    );
    // One data point per sweep: a shorter period would leave empty periods between runs, and
    // with missing data not breaching the alarm could never see N breaching periods in a row.
    let period = t.number(&alarm["Period"]);
    let interval = sweep_interval_seconds(t);
    ensure!(
        period >= interval,
        "{name}: Period {period}s shorter than the sweep interval {interval}s"
    );
    Ok((name, alarm))
}

fn check_parked_orders_alarm(t: &Template) -> CheckResult {
    use order_shared::telemetry::metrics::PARKED_ORDERS;
    let (name, alarm) = sweeper_gauge_alarm(t, PARKED_ORDERS, "an exchange outage")?;
    check_is_parameter(name, "Threshold", &alarm["Threshold"], t)?;
    check_is_parameter(name, "EvaluationPeriods", &alarm["EvaluationPeriods"], t)?;
    ensure!(
        alarm["ComparisonOperator"]
            .as_str()
            .is_some_and(|c| c.starts_with("GreaterThan")),
        "{name}: fires when the parked count is above the threshold"
    );
    check_alarm_notifies(name, alarm, t)
}

/// One stuck execution report is one order with a wrong fill: the alarm fires on the first,
/// and its text names the sweeper's age.
fn check_stuck_executions_alarm(t: &Template) -> CheckResult {
    use order_shared::handlers::sweeper::STUCK_EXECUTION_AGE;
    use order_shared::telemetry::metrics::STUCK_EXECUTIONS;
    let (name, alarm) = sweeper_gauge_alarm(t, STUCK_EXECUTIONS, "a report that cannot apply")?;
    ensure!(
        alarm["ComparisonOperator"] == "GreaterThanThreshold"
            && t.number(&alarm["Threshold"]) == 0.0,
        "{name}: must fire on the first stuck report (GreaterThanThreshold 0)"
    );
    ensure!(
        t.number(&alarm["EvaluationPeriods"]) == 1.0,
        "{name}: one sweep's count is enough (the report has waited {} minutes already)",
        STUCK_EXECUTION_AGE.as_secs() / 60
    );
    let minutes = format!("{} minutes", STUCK_EXECUTION_AGE.as_secs() / 60);
    ensure!(
        alarm["AlarmDescription"]
            .as_str()
            .is_some_and(|d| d.contains(&minutes)),
        "{name}: its description must say the sweeper's age ({minutes})"
    );
    check_alarm_notifies(name, alarm, t)
}

/// CloudWatch refuses alarms that look at more than a day (EvaluationPeriods × Period), and
/// DatapointsToAlarm may not exceed EvaluationPeriods - for every value the parameters allow.
fn check_alarm_windows_fit_for_every_allowed_value(t: &Template) -> CheckResult {
    let largest = |value: &Value| -> Result<f64, String> {
        match value.get("Ref").and_then(Value::as_str) {
            Some(parameter) => parameter_bounds(t, parameter)?
                .1
                .ok_or_else(|| format!("{parameter} needs a MaxValue")),
            None => Ok(t.number(value)),
        }
    };
    for (name, alarm) in alarms(t) {
        let period = match alarm.get("Period") {
            Some(period) => t.number(period),
            None => alarm["Metrics"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["MetricStat"].get("Period").map(|p| t.number(p)))
                .fold(0.0, f64::max),
        };
        ensure!(
            period >= 60.0,
            "{name}: period {period}s (standard-resolution metrics)"
        );
        let periods = largest(&alarm["EvaluationPeriods"])?;
        ensure!(
            periods * period <= 86_400.0,
            "{name}: up to {periods} x {period}s exceeds CloudWatch's one-day evaluation limit"
        );
        if let Some(datapoints) = alarm.get("DatapointsToAlarm") {
            ensure!(
                datapoints == &alarm["EvaluationPeriods"]
                    || t.number(datapoints) <= t.number(&alarm["EvaluationPeriods"]),
                "{name}: DatapointsToAlarm exceeds EvaluationPeriods"
            );
        }
    }
    Ok(())
}

#[test]
fn the_console_groups_every_parameter_once_under_a_plain_label() {
    let groups = t().root["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
        .as_array()
        .expect("Metadata.AWS::CloudFormation::Interface.ParameterGroups");
    let mut grouped = BTreeSet::new();
    for group in groups {
        // A comma in a flow mapping (`{ default: a, b }`) silently makes a second key.
        let label = group["Label"].as_object().expect("Label");
        assert!(
            label.len() == 1 && label["default"].is_string(),
            "ParameterGroups label {label:?} must be {{ default: \"...\" }}"
        );
        for parameter in group["Parameters"].as_array().expect("Parameters") {
            let parameter = parameter.as_str().unwrap().to_owned();
            assert!(
                t().root["Parameters"].get(&parameter).is_some(),
                "ParameterGroups name {parameter}, which is no parameter"
            );
            assert!(
                grouped.insert(parameter.clone()),
                "{parameter} is in two groups"
            );
        }
    }
    let parameters: BTreeSet<String> = t().root["Parameters"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(grouped, parameters, "every parameter in one ParameterGroup");
}

#[test]
fn every_variable_the_functions_read_is_set_or_left_to_the_code_on_purpose() {
    check_every_variable_read_is_set(t()).unwrap();
}

#[test]
fn every_number_parameter_is_bounded_and_its_default_within_bounds() {
    check_number_parameters_are_bounded(t()).unwrap();
}

#[test]
fn operational_knobs_are_parameters_whose_whole_range_the_functions_accept() {
    check_knobs_are_parameters_the_functions_accept(t()).unwrap();
    check_knob_bounds_make_sense(t()).unwrap();
}

#[test]
fn a_retried_message_is_parked_before_it_can_reach_the_dlq() {
    check_park_from_receive_below_max_receive_count(t()).unwrap();
}

#[test]
fn the_sweeper_publishes_incident_alerts_to_the_alert_topic_only() {
    check_sweeper_publishes_incident_alerts_to_the_topic_only(t()).unwrap();
}

#[test]
fn the_dlq_alarm_fires_on_messages_visible_or_in_flight() {
    check_dead_letter_alarm_counts_visible_and_in_flight(t()).unwrap();
}

#[test]
fn a_stuck_placer_raises_the_orders_queue_age_alarm() {
    check_orders_queue_age_alarm(t()).unwrap();
}

#[test]
fn an_exchange_outage_raises_the_parked_orders_alarm() {
    check_parked_orders_alarm(t()).unwrap();
}

#[test]
fn an_execution_report_that_cannot_apply_raises_the_stuck_executions_alarm() {
    check_stuck_executions_alarm(t()).unwrap();
}

#[test]
fn alarm_windows_fit_cloudwatchs_limits_for_every_allowed_value() {
    check_alarm_windows_fit_for_every_allowed_value(t()).unwrap();
}

/// Canaries for the checks above: each breaks a copy of the template the way a careless edit
/// would, and the check meant to catch it must fail (a check that passes everything proves
/// nothing). A mutation whose text is no longer in the template fails here too: update it
/// together with the template.
#[test]
fn checks_catch_broken_templates() {
    let text = std::fs::read_to_string(TEMPLATE_PATH).expect("infra/template.yaml");
    let mutations: [Mutation; 15] = [
        (
            "PARK_FROM_RECEIVE at maxReceiveCount",
            "PARK_FROM_RECEIVE: \"3\"",
            "PARK_FROM_RECEIVE: \"5\"",
            check_park_from_receive_below_max_receive_count,
        ),
        (
            "MaxReceiveCount allowed down to PARK_FROM_RECEIVE",
            "    MinValue: 4\n    MaxValue: 1000\n",
            "    MinValue: 3\n    MaxValue: 1000\n",
            check_park_from_receive_below_max_receive_count,
        ),
        (
            "sweeper without ALERT_TOPIC_ARN",
            "          # Incident alerts (opened / over) go to the admins' topic; the window is the alerter's.\n          ALERT_TOPIC_ARN: !Ref AlertTopic\n",
            "          # Incident alerts (opened / over) go to the admins' topic; the window is the alerter's.\n",
            check_sweeper_publishes_incident_alerts_to_the_topic_only,
        ),
        (
            "sweeper may publish anywhere",
            "                Action: sns:Publish\n                Resource: !Ref AlertTopic\n\n  MigratorRole:",
            "                Action: sns:Publish\n                Resource: \"*\"\n\n  MigratorRole:",
            check_sweeper_publishes_incident_alerts_to_the_topic_only,
        ),
        (
            "sweeper may not publish",
            "              - Sid: IncidentAlerts # opened / over alerts of incidents\n                Effect: Allow\n                Action: sns:Publish\n",
            "              - Sid: IncidentAlerts # opened / over alerts of incidents\n                Effect: Allow\n                Action: sqs:GetQueueUrl\n",
            check_sweeper_publishes_incident_alerts_to_the_topic_only,
        ),
        (
            "DLQ alarm on visible messages only",
            "Expression: visible + inflight",
            "Expression: visible",
            check_dead_letter_alarm_counts_visible_and_in_flight,
        ),
        (
            "parked-orders alarm on the wrong dimension",
            "MetricName: parked_orders\n      Dimensions: [{ Name: function, Value: sweeper }]",
            "MetricName: parked_orders\n      Dimensions: [{ Name: function, Value: placer }]",
            check_parked_orders_alarm,
        ),
        (
            "stuck-executions alarm waiting for a second report",
            "      MetricName: stuck_executions\n      Dimensions: [{ Name: function, Value: sweeper }]\n      Statistic: Maximum\n      Period: 60\n      EvaluationPeriods: 1\n      DatapointsToAlarm: 1\n      Threshold: 0\n",
            "      MetricName: stuck_executions\n      Dimensions: [{ Name: function, Value: sweeper }]\n      Statistic: Maximum\n      Period: 60\n      EvaluationPeriods: 1\n      DatapointsToAlarm: 1\n      Threshold: 1\n",
            check_stuck_executions_alarm,
        ),
        (
            "age alarm on the DLQ instead of the orders queue",
            "Dimensions: [{ Name: QueueName, Value: !GetAtt OrdersQueue.QueueName }]",
            "Dimensions: [{ Name: QueueName, Value: !GetAtt OrdersDeadLetterQueue.QueueName }]",
            check_orders_queue_age_alarm,
        ),
        (
            "api without MARKET_ORDER_TTL_SECONDS",
            "          MARKET_ORDER_TTL_SECONDS: !Ref MarketOrderTtlSeconds\n",
            "",
            check_every_variable_read_is_set,
        ),
        (
            "placer's breaker threshold hard-coded",
            "BREAKER_FAILURE_THRESHOLD: !Ref BreakerFailureThreshold",
            "BREAKER_FAILURE_THRESHOLD: \"10\"",
            check_knobs_are_parameters_the_functions_accept,
        ),
        (
            "TTL allowed beyond 30 days",
            "    MaxValue: 2592000\n",
            "    MaxValue: 2592001\n",
            check_knobs_are_parameters_the_functions_accept,
        ),
        (
            "alert window default differs from the code's",
            "  AlertWindowSeconds:\n    Type: Number\n    Default: 300\n",
            "  AlertWindowSeconds:\n    Type: Number\n    Default: 600\n",
            check_knobs_are_parameters_the_functions_accept,
        ),
        (
            "an unbounded number parameter",
            "  ParkedOrdersAlarmThreshold:\n    Type: Number\n    Default: 20\n    MinValue: 0\n",
            "  ParkedOrdersAlarmThreshold:\n    Type: Number\n    Default: 20\n",
            check_number_parameters_are_bounded,
        ),
        (
            "a parked-orders window beyond a day",
            "  ParkedOrdersAlarmMinutes:\n    Type: Number\n    Default: 3\n    MinValue: 1\n    MaxValue: 60\n",
            "  ParkedOrdersAlarmMinutes:\n    Type: Number\n    Default: 3\n    MinValue: 1\n    MaxValue: 2000\n",
            check_alarm_windows_fit_for_every_allowed_value,
        ),
    ];
    assert_canaries_caught(&text, mutations);
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
    // Every route of the HTTP API and the function behind it; one function per route.
    let mut routes: BTreeMap<(String, String), String> = BTreeMap::new();
    for (binary, function) in t().functions_by_binary() {
        for e in t().events(&function, "HttpApi") {
            let route = (
                e["Method"].as_str().unwrap().to_owned(),
                e["Path"].as_str().unwrap().to_owned(),
            );
            // No authorizer anywhere: the api checks keys itself (every route but /health), and
            // the docs routes are open to all.
            assert!(e.get("Auth").is_none(), "{route:?}: an authorizer");
            let previous = routes.insert(route.clone(), binary.clone());
            assert!(previous.is_none(), "route {route:?} routed twice");
        }
    }
    let expected = [
        ("POST", "/orders", "api"),
        ("GET", "/orders", "api"),
        ("GET", "/orders/{id}", "api"),
        ("DELETE", "/orders/{id}", "api"),
        ("GET", "/orders/{id}/executions", "api"),
        ("GET", "/health", "api"),
        // The reference page, its assets (Swagger UI's, under a versioned path) and the document.
        ("GET", "/docs", "docs"),
        ("GET", "/docs/{proxy+}", "docs"),
        ("GET", "/openapi.json", "docs"),
        // The live order page and its two assets.
        ("GET", "/live", "docs"),
        ("GET", "/live/{proxy+}", "docs"),
    ];
    for (method, path, binary) in expected {
        let route = (method.to_owned(), path.to_owned());
        assert_eq!(
            routes.get(&route).map(String::as_str),
            Some(binary),
            "route {route:?}"
        );
    }
    // Every operation of the OpenAPI document, to the api: a route the code serves but API
    // Gateway does not route is a 404 in AWS only.
    let doc =
        serde_json::to_value(<order_shared::handlers::api::ApiDoc as utoipa::OpenApi>::openapi())
            .unwrap();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            let route = (method.to_uppercase(), path.clone());
            assert_eq!(
                routes.get(&route).map(String::as_str),
                Some("api"),
                "route {route:?}"
            );
        }
    }
    let (_, http_api) = t().of_type("AWS::Serverless::HttpApi").next().unwrap();
    let p = &http_api["Properties"];
    assert!(p.get("Auth").is_none(), "no default authorizer");
    assert!(p["DefaultRouteSettings"]["ThrottlingRateLimit"].is_object());
    assert!(p["DefaultRouteSettings"]["ThrottlingBurstLimit"].is_object());
    assert!(p["AccessLogSettings"]["DestinationArn"].is_object());
}

#[test]
fn the_docs_function_reaches_nothing_but_its_logs() {
    let docs = t().function_for("docs");
    let p = t().function(&docs);
    assert!(p.get("VpcConfig").is_none(), "{docs}: outside the VPC");
    assert!(
        t().resource(&docs).get("DependsOn").is_none(),
        "{docs}: needs no migration"
    );
    let env = t().environment(&docs);
    assert_eq!(
        env.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH",
            "LIVE_UPDATES_URL",
            "RUST_LOG"
        ],
        "{docs}: no database setting from Globals"
    );
    assert_eq!(env["AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH"], "true");
    // The live page's socket: the WebSocket API's stage, what the LiveUpdatesUrl output says
    // (it only names a URL; the page's script connects to it from the browser).
    assert_eq!(
        t().process_text(&p["Environment"]["Variables"]["LIVE_UPDATES_URL"]),
        t().process_text(&t().root["Outputs"]["LiveUpdatesUrl"]["Value"]),
        "{docs}: LIVE_UPDATES_URL"
    );
    start_up("docs", &env_lookup(env.clone())).expect("docs: LIVE_UPDATES_URL parses");
    assert!(t().number(&p["Timeout"]) <= 10.0, "{docs}: Timeout");
    let role = t().resource(&docs)["Properties"]["Role"]["Fn::GetAtt"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        t().resource(&role)["Properties"]["ManagedPolicyArns"].is_null(),
        "{role}: no shared policy (its ENI actions are for the VPC functions)"
    );
    let mut actions: Vec<String> = iam_statements(t())
        .iter()
        .filter(|(owner, _)| owner == &role)
        .flat_map(|(_, s)| actions_of(s))
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        [
            "logs:CreateLogStream",
            "logs:PutLogEvents",
            "xray:PutTelemetryRecords",
            "xray:PutTraceSegments",
        ]
    );
    let outputs = &t().root["Outputs"];
    assert!(
        outputs["DocsUrl"]["Value"]["Fn::Sub"]
            .as_str()
            .is_some_and(|url| url.ends_with("/docs")),
        "output DocsUrl"
    );
}

/// Seconds between two sweeper runs, from its one schedule's `rate(...)` expression.
fn sweep_interval_seconds(t: &Template) -> f64 {
    let sweeper = t.function_for("sweeper");
    let schedules: Vec<_> = ["ScheduleV2", "Schedule"]
        .into_iter()
        .flat_map(|kind| t.events(&sweeper, kind))
        .collect();
    assert_eq!(schedules.len(), 1, "{sweeper} has one schedule");
    let expression = schedules[0]["ScheduleExpression"]
        .as_str()
        .expect("ScheduleExpression");
    let inner = expression
        .strip_prefix("rate(")
        .and_then(|e| e.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{sweeper}: expected rate(...), got {expression}"));
    let (count, unit) = inner.split_once(' ').expect("rate(<n> <unit>)");
    let count: f64 = count.parse().expect("rate count");
    let unit_seconds = match unit.trim_end_matches('s') {
        "minute" => 60.0,
        "hour" => 3600.0,
        "day" => 86400.0,
        other => panic!("{sweeper}: rate unit {other}"),
    };
    count * unit_seconds
}

#[test]
fn sweeper_runs_every_minute_and_finishes_before_the_next_run() {
    // Every minute: a parked order is re-sent at most a minute after it is due, an incident's
    // "over" alert goes out at most a minute after its quiet window, and the parked_orders
    // gauge has one data point per minute for its alarm.
    let interval = sweep_interval_seconds(t());
    assert_eq!(interval, 60.0, "the sweeper runs every minute");
    let timeout = t().number(&t().function(&t().function_for("sweeper"))["Timeout"]);
    assert!(
        timeout < interval,
        "sweeper timeout {timeout}s must be shorter than its interval {interval}s"
    );
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
        "LiveUpdatesUrl",
        "LivePageUrl",
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

// The database connection budget, its waits and alarms, and the deploy guide's table.
mod connections;

// The ingester's ECS service (issue #15): one private Fargate task, its roles, logs and alarms.
mod ingester;

// Live order updates (issue #16): the WebSocket API, its live-connect function and the fan-out's
// ECS service.
mod live;

// The defects of the deployer's review (issue #13): secrets endpoint, pepper, logs, https, major
// upgrades, NAT per zone, the encrypted alert topic and the capacity arithmetic.
mod deploy_review;
