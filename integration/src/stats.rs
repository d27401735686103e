//! Showing the engine's metrics without a node: a `metrics` recorder that keeps everything in
//! memory, and a plain-text rendering of it.

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// Installs an in-memory recorder for this process and returns the handle to read it.
pub fn install_recorder() -> Snapshotter {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // Fails only if a recorder is already installed, in which case that one receives the metrics.
    let _ = recorder.install();
    snapshotter
}

/// Renders every metric recorded so far, one per line, sorted by name.
pub fn render(snapshotter: &Snapshotter) -> String {
    let mut lines: Vec<String> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            let name = if labels.is_empty() {
                key.name().to_string()
            } else {
                format!("{}{{{}}}", key.name(), labels.join(","))
            };
            let value = match value {
                DebugValue::Counter(v) => v.to_string(),
                DebugValue::Gauge(v) => format!("{}", v.into_inner()),
                DebugValue::Histogram(values) => {
                    let sum: f64 = values.iter().map(|v| v.into_inner()).sum();
                    format!("count {} sum {:.6}", values.len(), sum)
                }
            };
            format!("{name} {value}")
        })
        .collect();
    lines.sort();
    lines.into_iter().map(|l| l + "\n").collect()
}
