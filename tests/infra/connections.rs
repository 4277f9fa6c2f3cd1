//! The production database connection budget (issue #12): what each function may hold through
//! RDS Proxy at its most instances, against the connections the proxy may open on every instance
//! class the template allows; the waits (the proxy's borrow timeout, the app's connection wait,
//! the function's timeout) in the order that makes a saturated database fail fast; the alarms
//! that say when an assumption stops holding; and the table in docs/DEPLOY.md, recomputed.
//!
//! The functions keep no session state, so the proxy lends a database connection per
//! transaction, not per client. The budget still counts every pool connection of every instance
//! as busy at once: an upper bound that needs no guess about transaction lengths, and what a
//! pinned fleet would hold.

use order_shared::adapters::postgres::DatabaseConfig;

use super::*;

/// RDS for PostgreSQL reserves `superuser_reserved_connections` (3) for superusers and
/// `rds.rds_superuser_reserved_connections` (2) for `rds_superuser` members out of
/// `max_connections` (AWS Knowledge Center, "remaining connection slots are reserved ...").
/// The proxy's share must leave at least these.
const RESERVED_CONNECTIONS: u64 = 3 + 2;

/// RDS's default `max_connections` for PostgreSQL: `LEAST({DBInstanceClassMemory/9531392}, 5000)`.
const BYTES_PER_CONNECTION: f64 = 9_531_392.0;
const MAX_CONNECTIONS_CAP: u64 = 5000;

/// `DBInstanceClassMemory` is the memory left after the OS and RDS's processes; the plan may
/// assume at most this share of the nominal memory (reported values are 89-97 % of the
/// nominal-memory figure from 2 GiB up, ~78 % at 1 GiB, which the template plans lower still).
const PLANNED_MEMORY_SHARE: f64 = 0.9;

/// `DatabaseConnectionsAlarm` fires at this share of `max_connections`.
const CONNECTIONS_ALARM_SHARE: f64 = 0.8;

/// deadpool waits up to `connect_timeout` for a pool slot and then up to `connect_timeout` for
/// a new connection (shared/src/adapters/postgres/connect.rs: `wait_timeout`, `create_timeout`).
const CONNECTION_WAITS: f64 = 2.0;

/// The CloudFormation mapping with one row per allowed instance class.
const CLASSES: &str = "DatabaseClasses";

const DEPLOY_GUIDE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/DEPLOY.md");

/// One function's share: connections per instance x most instances at once.
#[derive(Debug, Clone)]
struct Share {
    binary: &'static str,
    pool: u64,
    instances: u64,
}

impl Share {
    fn connections(&self) -> u64 {
        self.pool * self.instances
    }
}

/// One row of the `DatabaseClasses` mapping.
#[derive(Debug, Clone)]
struct Class {
    name: String,
    memory_gib: u64,
    max_connections: u64,
    connections_alarm: u64,
}

/// The proxy's pool settings (the target group's `ConnectionPoolConfigurationInfo`).
#[derive(Debug, Clone, Copy)]
struct ProxyPool {
    max_percent: u64,
    idle_percent: u64,
    borrow_timeout_s: f64,
}

impl ProxyPool {
    /// Database connections the proxy may open on an instance with `max_connections`.
    fn cap(&self, max_connections: u64) -> u64 {
        max_connections * self.max_percent / 100
    }
}

fn resource_of_type<'a>(t: &'a Template, kind: &'a str) -> Result<(&'a String, &'a Value), String> {
    let mut found = t.of_type(kind);
    let first = found
        .next()
        .ok_or_else(|| format!("no {kind} in the template"))?;
    ensure!(found.next().is_none(), "more than one {kind}");
    Ok(first)
}

fn proxy_pool(t: &Template) -> Result<ProxyPool, String> {
    let (name, group) = resource_of_type(t, "AWS::RDS::DBProxyTargetGroup")?;
    let pool = &group["Properties"]["ConnectionPoolConfigurationInfo"];
    let number = |key: &str| -> Result<f64, String> {
        let value = &pool[key];
        ensure!(
            !value.is_null(),
            "{name}: ConnectionPoolConfigurationInfo.{key} must be set (AWS's defaults: 100 %, 50 %, 120 s)"
        );
        Ok(t.number(value))
    };
    Ok(ProxyPool {
        max_percent: number("MaxConnectionsPercent")? as u64,
        idle_percent: number("MaxIdleConnectionsPercent")? as u64,
        borrow_timeout_s: number("ConnectionBorrowTimeout")?,
    })
}

fn classes(t: &Template) -> Result<Vec<Class>, String> {
    let rows = t.root["Mappings"][CLASSES]
        .as_object()
        .ok_or_else(|| format!("Mappings.{CLASSES} missing"))?;
    let allowed = t.root["Parameters"]["DatabaseInstanceClass"]["AllowedValues"]
        .as_array()
        .ok_or("DatabaseInstanceClass needs AllowedValues: the classes with a budget row")?;
    let allowed: Vec<String> = allowed.iter().map(scalar_text).collect();
    let default = comparable(t.parameter_default("DatabaseInstanceClass"));
    ensure!(
        allowed.contains(&default),
        "DatabaseInstanceClass's default {default} is not among its AllowedValues"
    );
    for name in rows.keys() {
        ensure!(
            allowed.contains(name),
            "Mappings.{CLASSES} has {name}, which DatabaseInstanceClass does not allow"
        );
    }
    // In the parameter's order (the docs' order).
    allowed
        .iter()
        .map(|name| {
            let row = rows.get(name).ok_or_else(|| {
                format!(
                    "DatabaseInstanceClass allows {name}, but Mappings.{CLASSES} has no row for it"
                )
            })?;
            let field = |key: &str| -> Result<u64, String> {
                row[key]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| {
                        format!("Mappings.{CLASSES}.{name}.{key} must be a number in quotes")
                    })
            };
            Ok(Class {
                name: name.clone(),
                memory_gib: field("MemoryGiB")?,
                max_connections: field("MaxConnections")?,
                connections_alarm: field("ConnectionsAlarm")?,
            })
        })
        .collect()
}

/// A function's database settings as its own start-up code reads them from the template's
/// environment (so a pool size left to the code's default counts too).
fn database_config(t: &Template, binary: &str) -> Result<DatabaseConfig, String> {
    let env = env_lookup(t.environment(&t.function_for(binary)));
    let config = match binary {
        "api" => ApiConfig::from_env(&env).map(|c| c.database),
        "placer" => PlacerConfig::from_env(&env).map(|c| c.database),
        "alerter" => AlerterConfig::from_env(&env).map(|c| c.database),
        "sweeper" => SweeperConfig::from_env(&env).map(|c| c.database),
        "migrator" => env.database(1),
        "live-connect" => LiveConnectConfig::from_env(&env).map(|c| c.database),
        other => panic!("unknown function binary {other}"),
    };
    config.map_err(|e| format!("{binary}: {e}"))
}

fn pool_size(t: &Template, binary: &str) -> Result<u64, String> {
    Ok(database_config(t, binary)?.pool_size as u64)
}

fn sqs_max_concurrency(t: &Template, binary: &str) -> Result<u64, String> {
    let event = t.sqs_event(&t.function_for(binary));
    let max = &event["ScalingConfig"]["MaximumConcurrency"];
    ensure!(
        !max.is_null(),
        "{binary}: its SQS event source needs ScalingConfig.MaximumConcurrency, or it scales to \
         1000 instances"
    );
    Ok(t.number(max) as u64)
}

/// Most live-connect instances at once: its reserved concurrency (API Gateway's `$connect`
/// and `$disconnect` beyond it are throttled and the client retries).
fn reserved_concurrency(t: &Template, binary: &str) -> Result<u64, String> {
    let reserved = &t.function(&t.function_for(binary))["ReservedConcurrentExecutions"];
    ensure!(
        !reserved.is_null(),
        "{binary}: needs ReservedConcurrentExecutions, or every WebSocket connect may start an \
         instance (up to the account's 1000)"
    );
    Ok(t.number(reserved) as u64)
}

/// Most sweeper runs at once: runs do not overlap by themselves (Timeout < interval), but an
/// asynchronous invocation may start up to `MaximumEventAgeInSeconds` late and meet the next.
fn sweeper_instances(t: &Template) -> Result<u64, String> {
    let sweeper = t.function_for("sweeper");
    let properties = t.function(&sweeper);
    let interval = sweep_interval_seconds(t);
    let timeout = t.number(&properties["Timeout"]);
    ensure!(
        timeout < interval,
        "sweeper: Timeout {timeout}s must be shorter than its interval {interval}s"
    );
    let late = &properties["EventInvokeConfig"]["MaximumEventAgeInSeconds"];
    ensure!(
        !late.is_null(),
        "sweeper: EventInvokeConfig.MaximumEventAgeInSeconds bounds how late a run may start"
    );
    Ok(1 + (t.number(late) / interval).ceil() as u64)
}

/// Every function's share at the template's defaults. The api's instances are the
/// `ApiExpectedConcurrency` parameter: nothing caps them (ApiConcurrencyAlarm watches).
fn shares(t: &Template) -> Result<Vec<Share>, String> {
    let migrator = t.function_for("migrator");
    ensure!(
        t.resource(&migrator)["Properties"]["Events"].is_null(),
        "migrator: only the custom resource may invoke it (one request at a time)"
    );
    let api_instances = comparable(t.parameter_default("ApiExpectedConcurrency"))
        .parse()
        .map_err(|_| "ApiExpectedConcurrency is a number".to_owned())?;
    Ok(vec![
        Share {
            binary: "placer",
            pool: pool_size(t, "placer")?,
            instances: sqs_max_concurrency(t, "placer")?,
        },
        Share {
            binary: "alerter",
            pool: pool_size(t, "alerter")?,
            instances: sqs_max_concurrency(t, "alerter")?,
        },
        Share {
            binary: "sweeper",
            pool: pool_size(t, "sweeper")?,
            instances: sweeper_instances(t)?,
        },
        Share {
            binary: "migrator",
            pool: pool_size(t, "migrator")?,
            instances: 1,
        },
        Share {
            binary: "api",
            pool: pool_size(t, "api")?,
            instances: api_instances,
        },
        // Counted whether or not its service exists yet (IngesterImageUri): the stack grows it
        // on the second deploy without another look at the budget.
        Share {
            binary: "ingester",
            pool: super::ingester::ingester_config(t)?.database.pool_size as u64,
            instances: super::ingester::ingester_most_tasks(t)?,
        },
        Share {
            binary: "live-connect",
            pool: pool_size(t, "live-connect")?,
            instances: reserved_concurrency(t, "live-connect")?,
        },
        // Like the ingester's: counted before its service exists.
        Share {
            binary: "live-fanout",
            pool: super::live::fanout_config(t)?.database.pool_size as u64,
            instances: super::ingester::most_tasks(t, "live-fanout")?,
        },
    ])
}

/// RDS's default `max_connections` if `DBInstanceClassMemory` were `share` of the nominal memory.
fn formula(memory_gib: u64, share: f64) -> u64 {
    let bytes = memory_gib as f64 * 1024.0 * 1024.0 * 1024.0 * share;
    ((bytes / BYTES_PER_CONNECTION).floor() as u64).min(MAX_CONNECTIONS_CAP)
}

/// The rules of docs/DEPLOY.md, "Database connections", for every allowed class.
pub(super) fn check_connection_budget(t: &Template) -> CheckResult {
    let pool = proxy_pool(t)?;
    let classes = classes(t)?;
    let shares = shares(t)?;
    ensure!(
        (1..=100).contains(&pool.max_percent) && pool.idle_percent <= pool.max_percent,
        "MaxIdleConnectionsPercent {} must not exceed MaxConnectionsPercent {} (1-100)",
        pool.idle_percent,
        pool.max_percent
    );
    let demand: u64 = shares.iter().map(Share::connections).sum();
    for class in &classes {
        let name = &class.name;
        // The plan never exceeds RDS's own formula, with memory to spare for the OS and RDS.
        let ceiling = formula(class.memory_gib, PLANNED_MEMORY_SHARE);
        ensure!(
            (1..=ceiling).contains(&class.max_connections),
            "{name}: MaxConnections {} above {ceiling}, RDS's LEAST(DBInstanceClassMemory/9531392, \
             5000) with DBInstanceClassMemory at {:.0} % of {} GiB",
            class.max_connections,
            PLANNED_MEMORY_SHARE * 100.0,
            class.memory_gib
        );
        let alarm = (class.max_connections as f64 * CONNECTIONS_ALARM_SHARE).floor() as u64;
        ensure!(
            class.connections_alarm == alarm,
            "{name}: ConnectionsAlarm {} must be {:.0} % of MaxConnections {}: {alarm}",
            class.connections_alarm,
            CONNECTIONS_ALARM_SHARE * 100.0,
            class.max_connections
        );
        // The proxy's share leaves the reserved slots (and RDS's own sessions) alone.
        let cap = pool.cap(class.max_connections);
        ensure!(
            class.max_connections - cap >= RESERVED_CONNECTIONS,
            "{name}: the proxy may open {cap} of {} connections, leaving {} - fewer than the {} \
             reserved for superuser and rds_superuser sessions",
            class.max_connections,
            class.max_connections - cap,
            RESERVED_CONNECTIONS
        );
        // The alarm sits between the proxy's idle pool and its cap.
        let idle = class.max_connections * pool.idle_percent / 100;
        ensure!(
            idle < class.connections_alarm && class.connections_alarm < cap,
            "{name}: DatabaseConnectionsAlarm at {} must be above the proxy's idle pool {idle} \
             and below its cap {cap}",
            class.connections_alarm
        );
        // Every function at its most instances, every pool connection busy at once.
        ensure!(
            demand <= cap,
            "{name}: the functions may hold {demand} database connections ({}), but the proxy may \
             open only {cap} ({} % of max_connections {})",
            shares
                .iter()
                .map(|s| format!("{} {} x {}", s.binary, s.pool, s.instances))
                .collect::<Vec<_>>()
                .join(" + "),
            pool.max_percent,
            class.max_connections
        );
    }
    // Every PlacerMaxConcurrency the parameter allows fits at least the largest class.
    let largest = classes
        .iter()
        .map(|c| pool.cap(c.max_connections))
        .max()
        .unwrap_or_default();
    let (_, placer_max) = parameter_bounds(t, "PlacerMaxConcurrency")?;
    let placer = shares.iter().find(|s| s.binary == "placer").unwrap();
    let others = demand - placer.connections();
    let placer_max = placer_max.ok_or("PlacerMaxConcurrency needs a MaxValue")? as u64;
    ensure!(
        others + placer.pool * placer_max <= largest,
        "PlacerMaxConcurrency allows {placer_max}, which no DatabaseInstanceClass can serve \
         ({} connections, largest proxy cap {largest})",
        others + placer.pool * placer_max
    );
    Ok(())
}

/// The waits, shortest first: the proxy's borrow timeout, the app's wait for a connection, the
/// function's timeout - so a saturated database makes fast errors, not timed-out invocations.
fn check_waits_end_in_order(t: &Template) -> CheckResult {
    let pool = proxy_pool(t)?;
    let borrow = pool.borrow_timeout_s;
    ensure!(
        borrow >= 1.0,
        "ConnectionBorrowTimeout {borrow}s: 0 means the proxy waits forever for a connection"
    );
    for binary in DATABASE_FUNCTIONS {
        let connect = database_config(t, binary)?.connect_timeout.as_secs_f64();
        ensure!(
            borrow < connect,
            "{binary}: ConnectionBorrowTimeout {borrow}s must be shorter than the app's \
             connection wait {connect}s (DATABASE_CONNECT_TIMEOUT_MS), so that the proxy gives up \
             first with an error the app can report"
        );
        let waits = CONNECTION_WAITS * connect + borrow;
        let timeout = t.number(&t.function(&t.function_for(binary))["Timeout"]);
        ensure!(
            waits < timeout,
            "{binary}: waiting for the database may take {waits}s (pool slot + new connection \
             {connect}s each + borrow {borrow}s), not less than its Timeout {timeout}s: Lambda \
             would kill the invocation before the database path gives up"
        );
    }
    Ok(())
}

/// An alarm resource by the metric it reads (directly or in metric math).
fn alarm_reading<'a>(
    t: &'a Template,
    namespace: &str,
    metric: &str,
) -> Result<(&'a String, &'a Value), String> {
    let reads = |p: &Value| {
        let direct = p["Namespace"] == namespace && p["MetricName"] == metric;
        let in_math = p["Metrics"].as_array().is_some_and(|queries| {
            queries.iter().any(|q| {
                let m = &q["MetricStat"]["Metric"];
                m["Namespace"] == namespace && m["MetricName"] == metric
            })
        });
        direct || in_math
    };
    let mut found = t
        .of_type("AWS::CloudWatch::Alarm")
        .filter(|(_, a)| reads(&a["Properties"]));
    let first = found
        .next()
        .ok_or_else(|| format!("no alarm reads {namespace} {metric}"))?;
    ensure!(
        found.next().is_none(),
        "more than one alarm reads {namespace} {metric}"
    );
    Ok(first)
}

/// A database alarm: on the stack's own instance or proxy, and only when the stack creates them.
fn check_database_alarm(
    t: &Template,
    metric: &str,
    dimension: (&str, &str),
) -> Result<(String, Value), String> {
    let (name, alarm) = alarm_reading(t, "AWS/RDS", metric)?;
    ensure!(
        alarm["Condition"] == "CreateDatabase",
        "{name}: Condition CreateDatabase (there is no instance or proxy with an existing database)"
    );
    let (dimension, resource_type) = dimension;
    let (target, _) = resource_of_type(t, resource_type)?;
    let properties = &alarm["Properties"];
    ensure!(
        dimension_is(properties, dimension, &json!({ "Ref": target })),
        "{name}: dimension {dimension} must be !Ref {target}"
    );
    check_alarm_notifies(name, properties, t)?;
    Ok((name.clone(), properties.clone()))
}

fn check_database_alarms(t: &Template) -> CheckResult {
    let pool = proxy_pool(t)?;
    let instance = ("DBInstanceIdentifier", "AWS::RDS::DBInstance");
    let proxy = ("ProxyName", "AWS::RDS::DBProxy");

    let (name, alarm) = check_database_alarm(t, "DatabaseConnections", instance)?;
    let budget = json!({ "Fn::FindInMap": [CLASSES, { "Ref": "DatabaseInstanceClass" }, "ConnectionsAlarm"] });
    ensure!(
        alarm["Threshold"] == budget,
        "{name}: Threshold must come from the budget: !FindInMap [{CLASSES}, !Ref \
         DatabaseInstanceClass, ConnectionsAlarm], is {}",
        alarm["Threshold"]
    );

    let (name, alarm) = check_database_alarm(t, "CPUUtilization", instance)?;
    let cpu = t.number(&alarm["Threshold"]);
    ensure!(
        (50.0..=90.0).contains(&cpu),
        "{name}: CPU threshold {cpu} %"
    );

    // Fires while borrows are slow, before they time out (the metric is in microseconds).
    let (name, alarm) = check_database_alarm(t, "DatabaseConnectionsBorrowLatency", proxy)?;
    let latency = t.number(&alarm["Threshold"]);
    ensure!(
        latency > 0.0 && latency < pool.borrow_timeout_s * 1e6,
        "{name}: threshold {latency} us must be below ConnectionBorrowTimeout ({} s)",
        pool.borrow_timeout_s
    );
    ensure!(alarm["Statistic"] == "Average", "{name}: Average");

    // Any pinned session, for longer than a short-lived pin can last.
    let (name, alarm) =
        check_database_alarm(t, "DatabaseConnectionsCurrentlySessionPinned", proxy)?;
    ensure!(
        t.number(&alarm["Threshold"]) == 0.0,
        "{name}: any pinned session"
    );
    let (_, db_proxy) = resource_of_type(t, "AWS::RDS::DBProxy")?;
    let idle_client = t.number(&db_proxy["Properties"]["IdleClientTimeout"]);
    let window = t.number(&alarm["EvaluationPeriods"]) * t.number(&alarm["Period"]);
    ensure!(
        window > idle_client,
        "{name}: its window {window}s must outlast the proxy's IdleClientTimeout {idle_client}s, \
         so that the migrator's pin on a deploy does not page anyone"
    );
    Ok(())
}

fn check_api_alarms(t: &Template) -> CheckResult {
    let (api, _) = resource_of_type(t, "AWS::Serverless::HttpApi")?;
    let (name, alarm) = alarm_reading(t, "AWS/ApiGateway", "5xx")?;
    let alarm = &alarm["Properties"];
    // A rate: the 5xx count over the request count of the same API and stage.
    let query = |metric: &str| -> Option<String> {
        alarm["Metrics"].as_array()?.iter().find_map(|q| {
            let m = &q["MetricStat"]["Metric"];
            let ours = m["Namespace"] == "AWS/ApiGateway"
                && m["MetricName"] == metric
                && dimension_is(m, "ApiId", &json!({ "Ref": api }))
                && dimension_is(m, "Stage", &json!("$default"))
                && q["MetricStat"]["Stat"] == "Sum";
            ours.then(|| q["Id"].as_str().unwrap_or_default().to_owned())
        })
    };
    let (Some(errors), Some(requests)) = (query("5xx"), query("Count")) else {
        return Err(format!(
            "{name}: reads the Sum of 5xx and of Count of {api}'s $default stage"
        ));
    };
    let returned: Vec<&str> = alarm["Metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|q| q["ReturnData"] == true)
        .filter_map(|q| q["Expression"].as_str())
        .collect();
    ensure!(
        returned.len() == 1 && returned[0].contains(&format!("{errors} / {requests}")),
        "{name}: the alarm's value must be the rate {errors} / {requests}, is {returned:?}"
    );
    check_alarm_notifies(name, alarm, t)?;

    let (name, alarm) = alarm_reading(t, "AWS/Lambda", "ConcurrentExecutions")?;
    let alarm = &alarm["Properties"];
    let function = t.function_for("api");
    ensure!(
        dimension_is(alarm, "FunctionName", &json!({ "Ref": function })),
        "{name}: FunctionName must be !Ref {function}"
    );
    ensure!(
        alarm["Threshold"] == json!({ "Ref": "ApiExpectedConcurrency" }),
        "{name}: Threshold must be !Ref ApiExpectedConcurrency, the api's share of the budget"
    );
    check_alarm_notifies(name, alarm, t)
}

/// The table of docs/DEPLOY.md, one row per memory size, as the template implies it.
fn budget_table(t: &Template) -> Result<Vec<String>, String> {
    let pool = proxy_pool(t)?;
    let shares = shares(t)?;
    let demand: u64 = shares.iter().map(Share::connections).sum();
    let share = |binary: &str| shares.iter().find(|s| s.binary == binary).unwrap().clone();
    let (api, placer) = (share("api"), share("placer"));
    let max_of = |parameter: &str| -> Result<u64, String> {
        Ok(parameter_bounds(t, parameter)?.1.unwrap_or(f64::INFINITY) as u64)
    };
    let (api_max, placer_max) = (
        max_of("ApiExpectedConcurrency")?,
        max_of("PlacerMaxConcurrency")?,
    );
    let mut rows: Vec<(Vec<String>, Class)> = Vec::new();
    for class in classes(t)? {
        match rows.iter_mut().find(|(_, c)| {
            (c.memory_gib, c.max_connections) == (class.memory_gib, class.max_connections)
        }) {
            Some((names, _)) => names.push(class.name.clone()),
            None => rows.push((vec![class.name.clone()], class)),
        }
    }
    rows.sort_by_key(|(_, c)| c.memory_gib);
    Ok(rows
        .into_iter()
        .map(|(names, class)| {
            let cap = pool.cap(class.max_connections);
            let spare = cap as i64 - demand as i64;
            let api_fits = cap.saturating_sub(demand - api.connections()) / api.pool;
            let placer_fits = cap.saturating_sub(demand - placer.connections()) / placer.pool;
            format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                names.join(", "),
                class.memory_gib,
                class.max_connections,
                cap,
                demand,
                spare,
                api_fits.min(api_max),
                placer_fits.min(placer_max),
            )
        })
        .collect())
}

fn check_deploy_guide_table(t: &Template, guide: &str) -> CheckResult {
    let rows = budget_table(t)?;
    let missing: Vec<&String> = rows
        .iter()
        .filter(|r| !guide.contains(r.as_str()))
        .collect();
    ensure!(
        missing.is_empty(),
        "docs/DEPLOY.md, \"Database connections\", must show the budget the template implies; \
         these rows are missing or differ:\n{}\n(the whole table:\n{})",
        missing
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        rows.join("\n")
    );
    // And the per-function shares it is made of.
    for share in shares(t)? {
        let row = format!(
            "| {} | {} | {} | {} |",
            share.binary,
            share.pool,
            share.instances,
            share.connections()
        );
        ensure!(
            guide.contains(&row),
            "docs/DEPLOY.md, \"Database connections\", must list `{row}` (function | pool | \
             instances | connections)"
        );
    }
    Ok(())
}

fn deploy_guide() -> String {
    std::fs::read_to_string(DEPLOY_GUIDE).expect("docs/DEPLOY.md")
}

fn check_deploy_guide(t: &Template) -> CheckResult {
    check_deploy_guide_table(t, &deploy_guide())
}

#[test]
fn the_connection_budget_fits_every_allowed_instance_class() {
    check_connection_budget(t()).unwrap();
}

#[test]
fn the_proxy_gives_up_before_the_app_and_the_app_before_lambda() {
    check_waits_end_in_order(t()).unwrap();
}

#[test]
fn database_alarms_watch_the_instance_and_the_proxy_against_the_budget() {
    check_database_alarms(t()).unwrap();
}

#[test]
fn api_alarms_watch_the_5xx_rate_and_the_budgeted_concurrency() {
    check_api_alarms(t()).unwrap();
}

#[test]
fn the_deploy_guide_shows_the_budget_the_template_implies() {
    check_deploy_guide(t()).unwrap();
}

/// The canary: each check must fail on a copy of the template broken the way a careless change
/// would break the budget (same form as `checks_catch_broken_templates`).
#[test]
fn connection_checks_catch_broken_templates() {
    let text = std::fs::read_to_string(TEMPLATE_PATH).expect("infra/template.yaml");
    let mutations: [Mutation; 17] = [
        (
            "placer concurrency beyond the smallest class",
            "  PlacerMaxConcurrency:\n    Type: Number\n    Default: 5\n",
            "  PlacerMaxConcurrency:\n    Type: Number\n    Default: 10\n",
            check_connection_budget,
        ),
        (
            "a larger api pool",
            "          DATABASE_POOL_SIZE: \"2\"\n          ORDERS_QUEUE_URL: !Ref OrdersQueue\n          ENQUEUE_TIMEOUT_MS",
            "          DATABASE_POOL_SIZE: \"4\"\n          ORDERS_QUEUE_URL: !Ref OrdersQueue\n          ENQUEUE_TIMEOUT_MS",
            check_connection_budget,
        ),
        (
            "the proxy may take every connection",
            "MaxConnectionsPercent: 90",
            "MaxConnectionsPercent: 100",
            check_connection_budget,
        ),
        (
            "an allowed class without a budget row",
            "    db.r7g.2xlarge: { MemoryGiB: \"64\", MaxConnections: \"5000\", ConnectionsAlarm: \"4000\" }\n",
            "",
            check_connection_budget,
        ),
        (
            "max_connections planned above RDS's formula",
            "db.t4g.micro: { MemoryGiB: \"1\", MaxConnections: \"80\", ConnectionsAlarm: \"64\" }",
            "db.t4g.micro: { MemoryGiB: \"1\", MaxConnections: \"112\", ConnectionsAlarm: \"89\" }",
            check_connection_budget,
        ),
        (
            "the borrow timeout back at 10 s",
            "ConnectionBorrowTimeout: 1\n",
            "ConnectionBorrowTimeout: 10\n",
            check_waits_end_in_order,
        ),
        (
            "the proxy waits forever",
            "ConnectionBorrowTimeout: 1\n",
            "ConnectionBorrowTimeout: 0\n",
            check_waits_end_in_order,
        ),
        (
            "the app's connection wait below the borrow timeout",
            "DATABASE_CONNECT_TIMEOUT_MS: \"2000\"",
            "DATABASE_CONNECT_TIMEOUT_MS: \"1000\"",
            check_waits_end_in_order,
        ),
        (
            "an api timeout shorter than its database waits",
            "      Timeout: 10\n      Environment:\n        Variables:\n          DATABASE_POOL_SIZE: \"2\"\n          ORDERS_QUEUE_URL",
            "      Timeout: 4\n      Environment:\n        Variables:\n          DATABASE_POOL_SIZE: \"2\"\n          ORDERS_QUEUE_URL",
            check_waits_end_in_order,
        ),
        (
            "connections alarm on a fixed threshold",
            "Threshold: !FindInMap [DatabaseClasses, !Ref DatabaseInstanceClass, ConnectionsAlarm]",
            "Threshold: 64",
            check_database_alarms,
        ),
        (
            "borrow-latency alarm on the instance instead of the proxy",
            "MetricName: DatabaseConnectionsBorrowLatency\n      Dimensions: [{ Name: ProxyName, Value: !Ref DatabaseProxy }]",
            "MetricName: DatabaseConnectionsBorrowLatency\n      Dimensions: [{ Name: DBInstanceIdentifier, Value: !Ref Database }]",
            check_database_alarms,
        ),
        (
            "CPU alarm even without a database",
            "  DatabaseCpuAlarm:\n    Type: AWS::CloudWatch::Alarm\n    Condition: CreateDatabase\n",
            "  DatabaseCpuAlarm:\n    Type: AWS::CloudWatch::Alarm\n",
            check_database_alarms,
        ),
        (
            "api 5xx alarm on the count, not the rate",
            "Expression: IF(errors >= 5, 100 * errors / requests, 0)",
            "Expression: errors",
            check_api_alarms,
        ),
        (
            "api concurrency alarm on a fixed threshold",
            "Threshold: !Ref ApiExpectedConcurrency",
            "Threshold: 20",
            check_api_alarms,
        ),
        (
            "the deploy guide's table no longer matches",
            "  ApiExpectedConcurrency:\n    Type: Number\n    Default: 19\n",
            "  ApiExpectedConcurrency:\n    Type: Number\n    Default: 18\n",
            check_deploy_guide,
        ),
        (
            "live-connect without a reserved concurrency",
            "      ReservedConcurrentExecutions: 2\n",
            "",
            check_connection_budget,
        ),
        (
            "a larger fan-out pool",
            "            - Name: DATABASE_POOL_SIZE\n              Value: \"1\"\n",
            "            - Name: DATABASE_POOL_SIZE\n              Value: \"4\"\n",
            check_connection_budget,
        ),
    ];
    assert_canaries_caught(&text, mutations);
}
