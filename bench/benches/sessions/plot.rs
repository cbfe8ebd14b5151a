//! `bench/throughput.svg`: throughput per subject, 64 tasks, 10⁴ sessions, log scale.

use std::path::Path;

use plotters::prelude::*;

use crate::Row;
use crate::subject::Op;

const OPS: [(Op, RGBColor); 4] = [
    (Op::LoadHit, RGBColor(31, 119, 180)),
    (Op::ReadOnly, RGBColor(148, 103, 189)),
    (Op::SaveChanged, RGBColor(255, 127, 14)),
    (Op::SaveNew, RGBColor(44, 160, 44)),
];

pub(crate) fn draw(rows: &[Row], path: &Path) -> anyhow::Result<()> {
    let mut subjects: Vec<String> = Vec::new();
    for r in rows {
        if !subjects.contains(&r.subject) {
            subjects.push(r.subject.clone());
        }
    }
    let thr = |s: &str, op: Op| {
        rows.iter()
            .find(|r| r.subject == s && r.op == op && r.tasks == 64 && r.population == 10_000)
            .map(|r| r.sample.throughput())
    };
    let max = rows
        .iter()
        .map(|r| r.sample.throughput())
        .fold(1.0_f64, f64::max);
    let x_max = 10f64.powf(max.log10().ceil());
    let n = subjects.len();
    let height = 120 + 64 * u32::try_from(n).unwrap_or(1);
    let root = SVGBackend::new(path, (1100, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Throughput per subject (64 tasks, 10^4 sessions, ops/s, log scale)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(300)
        .build_cartesian_2d((100f64..x_max).log_scale(), 0f64..n as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n * 2 + 1)
        .y_label_formatter(&|y| {
            let idx = (*y - 0.5).round();
            if (*y - 0.5 - idx).abs() > 0.01 || idx < 0.0 {
                return String::new();
            }
            // Subjects are drawn top to bottom.
            let i = n.saturating_sub(1).saturating_sub(idx as usize);
            subjects.get(i).cloned().unwrap_or_default()
        })
        .x_label_formatter(&|x| {
            if *x >= 1e6 {
                format!("{:.0}M", x / 1e6)
            } else if *x >= 1e3 {
                format!("{:.0}k", x / 1e3)
            } else {
                format!("{x:.0}")
            }
        })
        .draw()?;
    let bar = 0.8 / OPS.len() as f64;
    for (k, (op, color)) in OPS.iter().enumerate() {
        let bars: Vec<Rectangle<(f64, f64)>> = subjects
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let v = thr(s, *op)?;
                let base = (n - 1 - i) as f64 + 0.1 + bar * (OPS.len() - 1 - k) as f64;
                Some(Rectangle::new(
                    [(100.0, base), (v.max(100.0), base + bar * 0.9)],
                    color.filled(),
                ))
            })
            .collect();
        chart
            .draw_series(bars)?
            .label(op.label())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
