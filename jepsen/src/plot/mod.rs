//! The run's picture, in the spirit of Jepsen's reports: append latency (every PutRecords call,
//! coloured by outcome, log scale) above acknowledged records per second, with fault intervals
//! shaded in both, one colour per nemesis.

pub mod canvas;
mod font;

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::checkers::Facts;
use crate::history::OpType;
use canvas::Canvas;

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 900;

const OK: RGBColor = RGBColor(30, 130, 60);
const FAIL: RGBColor = RGBColor(200, 30, 30);
const INFO: RGBColor = RGBColor(230, 140, 0);

fn fault_color(kind: &str) -> RGBColor {
    match kind {
        "kill" => RGBColor(220, 50, 50),
        "pause" => RGBColor(220, 190, 0),
        "partition" => RGBColor(40, 90, 220),
        "lossy" => RGBColor(150, 60, 200),
        "partition-leader" => RGBColor(0, 165, 165),
        "ring" => RGBColor(90, 140, 255),
        "bridge" => RGBColor(20, 40, 140),
        "delay" => RGBColor(240, 120, 180),
        "clock" => RGBColor(130, 90, 40),
        "reshard" => RGBColor(60, 170, 60),
        "power-cut" => RGBColor(120, 70, 20),
        _ => RGBColor(120, 120, 120),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("failed to draw the plot: {0}")]
    Draw(String),
    #[error("failed to write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn draw_err<E: std::fmt::Debug>(e: E) -> PlotError {
    PlotError::Draw(format!("{e:?}"))
}

/// Seconds since the start of the run.
fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Renders the plot of `facts` into `path`.
pub fn render(facts: &Facts, path: &Path) -> Result<(), PlotError> {
    let mut canvas = Canvas::new(WIDTH, HEIGHT);
    draw(facts, &mut canvas)?;
    canvas.write_png(path).map_err(|source| PlotError::Write {
        path: path.display().to_string(),
        source,
    })
}

struct Series {
    t_min: f64,
    t_max: f64,
    /// (invoke time s, latency ms, completion type)
    latency: Vec<(f64, f64, OpType)>,
    /// (second, acknowledged records)
    throughput: Vec<(f64, f64)>,
    faults: Vec<(f64, f64, String)>,
}

fn series(facts: &Facts) -> Series {
    let latency: Vec<(f64, f64, OpType)> = facts
        .calls
        .iter()
        .filter_map(|c| {
            let done = c.complete_time?;
            let ms = done.saturating_sub(c.invoke_time) as f64 / 1e6;
            Some((secs(c.invoke_time), ms.max(0.1), c.ty))
        })
        .collect();
    let t_min = latency.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let t_min = if t_min.is_finite() {
        t_min.floor()
    } else {
        0.0
    };
    let end = secs(facts.end_time).max(t_min + 1.0);
    let buckets = (end - t_min).ceil() as usize + 1;
    let mut per_second = vec![0f64; buckets];
    for c in &facts.calls {
        if let Some(done) = c.complete_time {
            let b = ((secs(done) - t_min).max(0.0)) as usize;
            if let Some(slot) = per_second.get_mut(b) {
                *slot += c.acked as f64;
            }
        }
    }
    let throughput = per_second
        .iter()
        .enumerate()
        .map(|(i, n)| (t_min + i as f64 + 0.5, *n))
        .collect();
    let faults = facts
        .faults
        .iter()
        .map(|f| {
            (
                secs(f.start),
                secs(f.end.unwrap_or(facts.end_time)),
                f.kind.clone(),
            )
        })
        .collect();
    Series {
        t_min,
        t_max: end,
        latency,
        throughput,
        faults,
    }
}

fn draw(facts: &Facts, canvas: &mut Canvas) -> Result<(), PlotError> {
    let s = series(facts);
    let root = canvas.into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let (title, body) = root.split_vertically(60);
    title
        .draw(&Text::new(
            "streamd jepsen: append latency and throughput; faults shaded",
            (20, 12),
            ("sans-serif", 22).into_font().color(&BLACK),
        ))
        .map_err(draw_err)?;
    legend(&title)?;
    let (top, bottom) = body.split_vertically((HEIGHT - 60) * 55 / 100);

    let max_latency = s.latency.iter().map(|p| p.1).fold(10.0, f64::max) * 1.5;
    let mut chart = ChartBuilder::on(&top)
        .caption(
            "PutRecords latency (ms, log) by invoke time (s)",
            ("sans-serif", 13),
        )
        .margin(15)
        .x_label_area_size(25)
        .y_label_area_size(60)
        .build_cartesian_2d(s.t_min..s.t_max, (0.1f64..max_latency).log_scale())
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .label_style(("sans-serif", 12))
        .light_line_style(WHITE)
        .draw()
        .map_err(draw_err)?;
    chart
        .draw_series(s.faults.iter().map(|(a, b, kind)| {
            Rectangle::new(
                [(*a, 0.1), (*b, max_latency)],
                fault_color(kind).mix(0.18).filled(),
            )
        }))
        .map_err(draw_err)?;
    chart
        .draw_series(s.latency.iter().map(|(t, ms, ty)| {
            let color = match ty {
                OpType::Ok => OK,
                OpType::Fail => FAIL,
                OpType::Info | OpType::Invoke => INFO,
            };
            Circle::new((*t, *ms), 2, color.filled())
        }))
        .map_err(draw_err)?;

    let max_tput = s.throughput.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&bottom)
        .caption("acknowledged records per second", ("sans-serif", 13))
        .margin(15)
        .x_label_area_size(25)
        .y_label_area_size(60)
        .build_cartesian_2d(s.t_min..s.t_max, 0f64..max_tput)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .label_style(("sans-serif", 12))
        .light_line_style(WHITE)
        .draw()
        .map_err(draw_err)?;
    chart
        .draw_series(s.faults.iter().map(|(a, b, kind)| {
            Rectangle::new(
                [(*a, 0.0), (*b, max_tput)],
                fault_color(kind).mix(0.18).filled(),
            )
        }))
        .map_err(draw_err)?;
    chart
        .draw_series(LineSeries::new(
            s.throughput.iter().copied(),
            OK.stroke_width(2),
        ))
        .map_err(draw_err)?;
    root.present().map_err(draw_err)?;
    Ok(())
}

fn legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
    let items: [(&str, RGBColor, bool); 8] = [
        ("ok", OK, false),
        ("fail", FAIL, false),
        ("info", INFO, false),
        ("kill", fault_color("kill"), true),
        ("pause", fault_color("pause"), true),
        ("partition", fault_color("partition"), true),
        ("lossy", fault_color("lossy"), true),
        ("partition-leader", fault_color("partition-leader"), true),
    ];
    let mut x = 20;
    for (label, color, shaded) in items {
        let style = if shaded {
            color.mix(0.35).filled()
        } else {
            color.filled()
        };
        area.draw(&Rectangle::new([(x, 40), (x + 12, 52)], style))
            .map_err(|e| PlotError::Draw(format!("{e:?}")))?;
        area.draw(&Text::new(
            label.to_string(),
            (x + 18, 42),
            ("sans-serif", 12).into_font().color(&BLACK),
        ))
        .map_err(|e| PlotError::Draw(format!("{e:?}")))?;
        x += 40 + 6 * label.len() as i32;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::fixture::H;
    use crate::history::Outcome;

    #[test]
    fn renders_a_png_with_shaded_faults() {
        let mut h = H::default();
        for i in 0..50u64 {
            h.append_ok("w0", i * 100, i * 100 + 20, &[("v", "s0", u128::from(i))]);
        }
        h.append("w1", 1_000, 3_000, &[("x", "s0", Outcome::Info, None)]);
        h.fault(1, "kill", &[2], 1_000, 2_500);
        let facts = h.facts();
        let mut canvas = Canvas::new(WIDTH, HEIGHT);
        draw(&facts, &mut canvas).unwrap();
        // Something other than the white background was drawn in both panels.
        let coloured = (0..WIDTH)
            .flat_map(|x| (0..HEIGHT).map(move |y| (x, y)))
            .filter(|(x, y)| canvas.pixel(*x, *y) != Some((255, 255, 255)))
            .count();
        assert!(coloured > 10_000, "{coloured}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plot.png");
        render(&facts, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    }

    #[test]
    fn an_empty_history_still_renders() {
        let dir = tempfile::tempdir().unwrap();
        render(&Facts::default(), &dir.path().join("p.png")).unwrap();
    }
}
