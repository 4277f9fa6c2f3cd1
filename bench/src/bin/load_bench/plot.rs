//! `load-bench plot`: the SVG charts of `bench/results/`. For every `post*.json` the latency
//! percentiles against connections (`latency-vs-connections[-suffix].svg`, one colour per target:
//! p50 thick, p90 thin, p99 faint); from `placements.json` the placed orders over time.

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;
use serde_json::Value;

/// The targets of a `post*.json`: (label, median rows). A file from before targets existed has
/// its rows at the top and is one unnamed target.
fn targets(post: &Value) -> Vec<(String, Vec<Value>)> {
    match post["targets"].as_array() {
        Some(targets) => targets
            .iter()
            .map(|t| {
                (
                    t["label"].as_str().unwrap_or("?").to_owned(),
                    t["rows"].as_array().cloned().unwrap_or_default(),
                )
            })
            .collect(),
        None => vec![(
            String::new(),
            post["rows"].as_array().cloned().unwrap_or_default(),
        )],
    }
}

fn latency_chart(post: &Value, path: &Path) -> anyhow::Result<()> {
    let targets = targets(post);
    let medians = || {
        targets
            .iter()
            .flat_map(|(_, rows)| rows.iter().map(|r| &r["median"]))
    };
    let max_latency = medians()
        .filter_map(|m| m["p99_ms"].as_f64())
        .fold(1.0, f64::max);
    let max_conn = medians()
        .filter_map(|m| m["connections"].as_f64())
        .fold(1.0, f64::max);
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "POST /orders latency vs concurrent connections",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_conn * 1.05, 0.0..max_latency * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("connections")
        .y_desc("latency (ms)")
        .draw()?;
    let palette = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (i, (label, rows)) in targets.iter().enumerate() {
        let color = palette[i % palette.len()];
        for (key, style) in [
            ("p50_ms", color.stroke_width(3)),
            ("p90_ms", color.stroke_width(1)),
            ("p99_ms", color.mix(0.4).stroke_width(2)),
        ] {
            let points: Vec<(f64, f64)> = rows
                .iter()
                .filter_map(|r| {
                    Some((
                        r["median"]["connections"].as_f64()?,
                        r["median"][key].as_f64()?,
                    ))
                })
                .collect();
            let name = format!("{label} {}", key.trim_end_matches("_ms"));
            chart
                .draw_series(LineSeries::new(points.clone(), style))?
                .label(name.trim().to_owned())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn placements_chart(placements: &Value, path: &Path) -> anyhow::Result<()> {
    let series: Vec<(f64, f64)> = placements["series"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|p| Some((p["t"].as_f64()?, p["placed"].as_f64()?)))
        .collect();
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_t = series.iter().map(|p| p.0).fold(1.0, f64::max);
    let max_n = series.iter().map(|p| p.1).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption("Orders placed over time", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_t * 1.05, 0.0..max_n * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the first POST")
        .y_desc("orders placed")
        .draw()?;
    chart.draw_series(LineSeries::new(series, BLUE))?;
    root.present()?;
    Ok(())
}

/// Draws every chart whose results are in `out`.
pub fn plot(out: &Path) -> anyhow::Result<()> {
    let read = |path: &Path| -> anyhow::Result<Value> {
        Ok(serde_json::from_str(
            &std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?,
        )?)
    };
    let mut posts: Vec<_> = std::fs::read_dir(out)
        .with_context(|| format!("{}: run the benchmark first", out.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("post") && name.ends_with(".json")
        })
        .collect();
    posts.sort();
    anyhow::ensure!(!posts.is_empty(), "no post*.json in {}", out.display());
    for post in posts {
        let stem = post.file_stem().and_then(|s| s.to_str()).unwrap_or("post");
        let suffix = stem.strip_prefix("post").unwrap_or("");
        let path = out.join(format!("latency-vs-connections{suffix}.svg"));
        latency_chart(&read(&post)?, &path)?;
        println!("wrote {}", path.display());
    }
    if let Ok(placements) = read(&out.join("placements.json")) {
        let path = out.join("placements-over-time.svg");
        placements_chart(&placements, &path)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
