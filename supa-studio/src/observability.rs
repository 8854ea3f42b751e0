//! A project's last hour at the gateway, drawn: requests per second, p99
//! latency and the share of 5xx answers, minute by minute. The charts are
//! SVG written on the server (bars, so a minute without requests is a gap,
//! not a line through zero), each with the same numbers as a table for
//! screen readers and for copying.

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use supa_core::usage::{BOUNDS_MS, Counts, Series};

use crate::Studio;
use crate::pages::{ProjectParam, failed, page, project_nav};
use crate::session::Session;

/// The chart's drawing area, in SVG units.
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 120.0;

/// One chart: a title, a unit, and a value per minute (`None`: nothing to
/// measure that minute).
struct Chart {
    id: &'static str,
    title: &'static str,
    unit: &'static str,
    values: Vec<Option<f64>>,
}

pub(crate) async fn page_of(
    State(studio): State<Studio>,
    session: Session,
    ProjectParam(project_ref): ProjectParam,
) -> Response {
    let tenant = &studio.inner.tenant;
    let project = match tenant.get_project(&project_ref).await {
        Ok(p) => p,
        Err(e) => return failed(&session, e),
    };
    let usage = tenant.project_usage(&project_ref).await;
    let body = html! {
        h1 { (project.name) }
        (project_nav(&project_ref, "observability"))
        h2 { "Last hour at the gateway" }
        @match usage {
            Ok(Some(series)) => (charts(&series)),
            Ok(None) => p.hint role="status" {
                "Not available: the gateways run elsewhere and share their counts through Redis, "
                "which this control plane was not given (set SUPA_REDIS_URL on the tenant manager and the gateways)."
            },
            Err(e) => p.error role="alert" { "The gateways' counts cannot be read: " (e) },
        }
    };
    page(
        &format!("Observability · {}", project.name),
        Some(&session),
        body,
    )
}

fn charts(series: &Series) -> Markup {
    let total = series.total();
    let per_minute = |f: fn(&Counts) -> Option<f64>| series.minutes.iter().map(f).collect();
    let charts = [
        Chart {
            id: "rps",
            title: "Requests per second",
            unit: "req/s",
            values: per_minute(|c| Some(c.requests as f64 / 60.0)),
        },
        Chart {
            id: "p99",
            title: "p99 latency",
            unit: "ms",
            // Past the last bucket the bound is unknown; drawn at it.
            values: per_minute(|c| {
                (c.requests > 0)
                    .then(|| f64::from(c.p99_ms().unwrap_or(BOUNDS_MS[BOUNDS_MS.len() - 1])))
            }),
        },
        Chart {
            id: "errors",
            title: "Error rate (5xx)",
            unit: "%",
            values: per_minute(|c| {
                (c.requests > 0).then(|| c.errors as f64 * 100.0 / c.requests as f64)
            }),
        },
    ];
    html! {
        dl id="usage-totals" {
            dt { "Requests" } dd { (total.requests) }
            dt { "Server errors" } dd { (total.errors) }
            dt { "p99 latency" } dd { (match total.p99_ms() { Some(ms) => format!("≤ {ms} ms"), None if total.requests > 0 => format!("> {} ms", BOUNDS_MS[BOUNDS_MS.len() - 1]), None => "no requests".to_owned() }) }
        }
        @for chart in &charts { (draw(chart, series.first_minute)) }
        p.hint { "Latency is the gateway's time to the response headers, in buckets (1, 2, 5, 10, 20, 50 ms ...): a p99 of 50 ms means between 20 and 50 ms. The running minute is shown as it fills." }
    }
}

fn draw(chart: &Chart, first_minute: u64) -> Markup {
    let max = chart
        .values
        .iter()
        .flatten()
        .copied()
        .fold(0.0_f64, f64::max);
    let scale = if max > 0.0 { HEIGHT / max } else { 0.0 };
    let step = WIDTH / chart.values.len().max(1) as f64;
    let latest = chart.values.last().copied().flatten();
    let label = format!(
        "{}: highest {} {unit}, latest minute {}",
        chart.title,
        number(max),
        latest.map_or("no requests".to_owned(), |v| format!(
            "{} {}",
            number(v),
            chart.unit
        )),
        unit = chart.unit,
    );
    html! {
        section.chart aria-labelledby={ "chart-" (chart.id) } {
            h3 id={ "chart-" (chart.id) } { (chart.title) " " span.hint { "(" (chart.unit) ")" } }
            svg id={ "svg-" (chart.id) } role="img" aria-label=(label) viewBox={ "0 0 " (WIDTH) " " (HEIGHT + 16.0) } preserveAspectRatio="none" {
                line.axis x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) {}
                @for (i, v) in chart.values.iter().enumerate() {
                    @if let Some(v) = v.filter(|v| *v > 0.0) {
                        @let h = (v * scale).max(1.0);
                        rect x=(format!("{:.1}", i as f64 * step + 1.0)) y=(format!("{:.1}", HEIGHT - h)) width=(format!("{:.1}", step - 2.0)) height=(format!("{h:.1}")) {}
                    }
                }
                text x="2" y="12" { (number(max)) }
                text x="2" y=(HEIGHT + 14.0) { "60 min ago" }
                text x=(WIDTH - 2.0) y=(HEIGHT + 14.0) text-anchor="end" { "now" }
            }
            details {
                summary { "Minutes as a table" }
                table {
                    caption.visually-hidden { (chart.title) " by minute" }
                    thead { tr { th scope="col" { "Minute (UTC)" } th scope="col" { (chart.title) " (" (chart.unit) ")" } } }
                    tbody {
                        @for (i, v) in chart.values.iter().enumerate() {
                            @if let Some(v) = v {
                                tr { td { (clock(first_minute + i as u64)) } td { (number(*v)) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A value with as many decimals as it needs to read.
fn number(v: f64) -> String {
    if v >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// `HH:MM` of a Unix minute.
fn clock(minute: u64) -> String {
    format!("{:02}:{:02}", minute / 60 % 24, minute % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_clock() {
        assert_eq!(number(0.0), "0");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(12.34), "12.3");
        assert_eq!(number(250.7), "251");
        assert_eq!(clock(0), "00:00");
        assert_eq!(clock(24 * 60 + 61), "01:01");
    }

    #[test]
    fn a_quiet_minute_is_a_gap_and_a_busy_one_a_bar() {
        let mut busy = Counts {
            requests: 120,
            errors: 6,
            ..Counts::default()
        };
        busy.latency[3] = 120;
        let series = Series::from_fn(100, |m| if m == 100 { busy } else { Counts::default() });
        let html = charts(&series).into_string();
        // One bar per chart, for the one busy minute.
        assert_eq!(html.matches("<rect").count(), 3);
        assert!(html.contains("latest minute 2 req/s"));
        assert!(html.contains("latest minute 10 ms"));
        assert!(html.contains("latest minute 5 %"));
        // The table lists minutes with requests: all three charts list
        // minute 100 (01:40); the rate chart also lists the quiet ones.
        assert_eq!(html.matches("<td>01:40</td>").count(), 3);
    }
}
