//! netbuf-bench-report: the plots of `make bench`, drawn from the CSV files
//! the benchmark programs leave in bench-results/.
//!
//! - throughput against channels, from the newest `scaling-*.csv`
//!   (examples/scaling.rs; columns `section,kind,depth,channels,msgs_per_s,
//!   p50_us,p99_us,server_cpu_us_per_msg`): netbuf clients strict and depth
//!   8, the libpq SELECT baseline, netbuf from standby backends;
//! - round trip (p50) against payload, one plot per transport, from the
//!   newest CSV of examples/bench.rs (one with at least the columns
//!   `section,transport,row,payload_bytes,p50_us`, in any order): every row measured at
//!   two payloads or more.  Without such a file (an older bench) that plot
//!   is skipped with a note.
//!
//! Writes `<stamp>-channels.svg` and `<stamp>-payload-<transport>.svg` next
//! to the CSV they come from (the stamp is the CSV's, less its
//! `scaling-`/`bench-` prefix) and copies them to docs/img/ under fixed
//! names (`channels.svg`, `payload-<transport>.svg`), which the docs show.
//!
//! Usage: netbuf-bench-report [RESULTS_DIR [IMG_DIR]]; defaults are the
//! workspace's bench-results/ and docs/img/.

use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use plotters::prelude::*;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The columns each plot needs (a file may have more, in any order).
const SCALING_COLUMNS: &[&str] = &["section", "kind", "depth", "channels", "msgs_per_s"];
const BENCH_COLUMNS: &[&str] = &["section", "transport", "row", "payload_bytes", "p50_us"];
const SIZE: (u32, u32) = (900, 540);

/// One CSV file: its rows as maps from column name to text.
struct Csv {
    path: PathBuf,
    rows: Vec<BTreeMap<String, String>>,
}

impl Csv {
    fn read(path: &Path) -> Result<Csv> {
        let text = std::fs::read_to_string(path)?;
        let mut records = parse_csv(&text).into_iter();
        let header = records.next().unwrap_or_default();
        let rows = records
            .filter(|r| r.iter().any(|f| !f.is_empty()))
            .map(|r| header.iter().cloned().zip(r).collect())
            .collect();
        Ok(Csv {
            path: path.to_owned(),
            rows,
        })
    }

    /// The stamp of the file name: `scaling-20261125-120000.csv` gives
    /// `20261125-120000`.
    fn stamp(&self) -> String {
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        ["scaling-", "bench-"]
            .iter()
            .find_map(|p| stem.strip_prefix(p))
            .unwrap_or(&stem)
            .to_owned()
    }
}

/// RFC 4180 records: fields separated by commas, optionally in double
/// quotes (inside which commas and line breaks are text and `""` is a
/// quote); lines end in LF or CRLF.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records
}

fn num(row: &BTreeMap<String, String>, key: &str) -> Option<f64> {
    row.get(key)?.parse().ok()
}

/// The newest (by modification time) `*.csv` in `dir` whose header has
/// `columns`.
fn newest_csv(dir: &Path, columns: &[&str]) -> Result<Option<PathBuf>> {
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading {}: {e}", dir.display()).into()),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "csv") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let header = parse_csv(text.lines().next().unwrap_or(""))
            .into_iter()
            .next()
            .unwrap_or_default();
        if !columns.iter().all(|c| header.iter().any(|h| h == c)) {
            continue;
        }
        let mtime = std::fs::metadata(&path)?.modified()?;
        if best.as_ref().is_none_or(|(t, _)| mtime > *t) {
            best = Some((mtime, path));
        }
    }
    Ok(best.map(|(_, p)| p))
}

/// A line with its points marked, and its legend entry.
fn draw_line<DB: DrawingBackend, X, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    points: Vec<(X::ValueType, Y::ValueType)>,
    label: &str,
    color: RGBColor,
) -> Result<()>
where
    DB::ErrorType: 'static,
    X: Ranged,
    Y: Ranged,
    X::ValueType: Clone + 'static,
    Y::ValueType: Clone + 'static,
{
    chart
        .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
        .map_err(|e| e.to_string())?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    chart
        .draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 3, color.filled())),
        )
        .map_err(|e| e.to_string())?;
    Ok(())
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Aggregate msgs/s against channels, one line per (kind, depth).
fn channels_plot(csv: &Csv, out: &Path) -> Result<()> {
    let mut series: BTreeMap<(String, u32), Vec<(f64, f64)>> = BTreeMap::new();
    for row in &csv.rows {
        let (Some(kind), Some(depth), Some(ch), Some(rate)) = (
            row.get("kind"),
            num(row, "depth"),
            num(row, "channels"),
            num(row, "msgs_per_s"),
        ) else {
            continue;
        };
        series
            .entry((kind.clone(), depth as u32))
            .or_default()
            .push((ch, rate));
    }
    if series.is_empty() {
        return Err(format!("{}: no rows", csv.path.display()).into());
    }
    let xmax = series.values().flatten().map(|p| p.0).fold(1.0, f64::max);
    let ymax = series.values().flatten().map(|p| p.1).fold(1.0, f64::max);

    let root = SVGBackend::new(out, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "netbuf: aggregate throughput against concurrent channels (16 B echo, TCP)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d((1f64..xmax * 1.2).log_scale(), 0f64..ymax * 1.1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("channels (one connection to the primary each)")
        .y_desc("messages per second, all channels")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{:.0}k", y / 1e3))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, ((kind, depth), mut points)) in series.into_iter().enumerate() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mode = if depth == 1 {
            "strict".to_owned()
        } else {
            format!("depth {depth}")
        };
        let label = match kind.as_str() {
            "netbuf" => format!("netbuf Rust clients, {mode}"),
            "select" => format!("libpq SELECT $1, {mode}"),
            "netbuf_backend" => format!("netbuf standby backends, {mode}"),
            "raw" => format!("raw socket, one process each, {mode}"),
            other => format!("{other}, {mode}"),
        };
        draw_line(&mut chart, points, &label, COLORS[i % COLORS.len()])?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

/// p50 against payload for `transport`: one line per row (and section)
/// measured at two payloads or more.  False when there is none.
fn payload_plot(csv: &Csv, transport: &str, out: &Path) -> Result<bool> {
    let mut series: BTreeMap<(String, String), Vec<(f64, f64)>> = BTreeMap::new();
    for row in csv
        .rows
        .iter()
        .filter(|r| r.get("transport").is_some_and(|t| t == transport))
    {
        let (Some(section), Some(name), Some(payload), Some(p50)) = (
            row.get("section"),
            row.get("row"),
            num(row, "payload_bytes"),
            num(row, "p50_us"),
        ) else {
            continue;
        };
        if payload > 0.0 && p50 > 0.0 {
            series
                .entry((section.clone(), name.clone()))
                .or_default()
                .push((payload, p50));
        }
    }
    series.retain(|_, p| p.len() >= 2);
    if series.is_empty() {
        return Ok(false);
    }
    let all = || series.values().flatten();
    let (xmin, xmax) = all().fold((f64::MAX, 0f64), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
    let (ymin, ymax) = all().fold((f64::MAX, 0f64), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let sections = series
        .keys()
        .map(|k| &k.0)
        .collect::<std::collections::BTreeSet<_>>()
        .len();

    let root = SVGBackend::new(out, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Round trip (p50) against payload, {transport}"),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (xmin / 1.5..xmax * 1.5).log_scale(),
            (ymin / 1.5..ymax * 1.5).log_scale(),
        )
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("payload (bytes, log scale)")
        .y_desc("p50 round trip (us, log scale)")
        // Log-scale ticks fall on powers of ten: decimal units.
        .x_label_formatter(&|x| match *x {
            x if x >= 1e6 => format!("{} MB", x / 1e6),
            x if x >= 1e3 => format!("{} kB", x / 1e3),
            x => format!("{x} B"),
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, ((section, name), mut points)) in series.into_iter().enumerate() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        // The section only where rows of several sections share the plot.
        let label = if sections > 1 {
            format!("{name} ({section})")
        } else {
            name
        };
        draw_line(&mut chart, points, &label, COLORS[i % COLORS.len()])?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(true)
}

fn copy_to(svg: &Path, img_dir: &Path, name: &str) -> Result<()> {
    std::fs::create_dir_all(img_dir)?;
    let to = img_dir.join(name);
    std::fs::copy(svg, &to).map_err(|e| format!("copying to {}: {e}", to.display()))?;
    println!("plot written to {} (and {})", svg.display(), to.display());
    Ok(())
}

fn run() -> Result<()> {
    // bench/report -> the workspace root.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().and_then(Path::parent).unwrap_or(manifest);
    let mut args = std::env::args_os().skip(1);
    let results = args
        .next()
        .map_or_else(|| root.join("bench-results"), PathBuf::from);
    let img = args
        .next()
        .map_or_else(|| root.join("docs/img"), PathBuf::from);

    match newest_csv(&results, SCALING_COLUMNS)? {
        Some(path) => {
            let csv = Csv::read(&path)?;
            let out = results.join(format!("{}-channels.svg", csv.stamp()));
            channels_plot(&csv, &out)?;
            copy_to(&out, &img, "channels.svg")?;
        }
        None => println!(
            "netbuf-bench-report: no scaling-*.csv in {}: throughput plot skipped",
            results.display()
        ),
    }
    match newest_csv(&results, BENCH_COLUMNS)? {
        Some(path) => {
            let csv = Csv::read(&path)?;
            let transports: std::collections::BTreeSet<String> = csv
                .rows
                .iter()
                .filter_map(|r| r.get("transport").cloned())
                .collect();
            for t in transports {
                let out = results.join(format!("{}-payload-{t}.svg", csv.stamp()));
                if payload_plot(&csv, &t, &out)? {
                    copy_to(&out, &img, &format!("payload-{t}.svg"))?;
                }
            }
        }
        None => println!(
            "netbuf-bench-report: no CSV with columns {} in {}: \
             round-trip-against-payload plots skipped",
            BENCH_COLUMNS.join(","),
            results.display()
        ),
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netbuf-bench-report: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_quoted_or_not() {
        let text = "a,b,c\r\n\"x, y\",\"say \"\"hi\"\"\",\n1,,\"multi\nline\"\n";
        assert_eq!(
            parse_csv(text),
            vec![
                vec!["a", "b", "c"],
                vec!["x, y", "say \"hi\"", ""],
                vec!["1", "", "multi\nline"],
            ]
        );
        // No final line break: the last record still counts.
        assert_eq!(parse_csv("a,b\n1,2"), vec![vec!["a", "b"], vec!["1", "2"]]);
    }

    /// The newest file with the columns wins; others, and files without
    /// them, are passed over.
    #[test]
    fn newest_csv_with_the_columns() {
        let dir = std::env::temp_dir().join(format!("netbuf-report-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| {
            std::fs::write(dir.join(name), text).unwrap();
            // Distinct modification times.
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        write(
            "bench-1.csv",
            "section,transport,row,payload_bytes,p50_us\nstrict,tcp,\"(c) x\",16,40\n",
        );
        write(
            "bench-2.csv",
            "section,transport,row,payload_bytes,p50_us,depth\nstrict,tcp,\"(c) x\",16,41,1\n",
        );
        write("scaling-3.csv", "section,kind,depth,channels,msgs_per_s\n");
        write("other.csv", "section,transport,row\n");
        let bench = newest_csv(&dir, BENCH_COLUMNS).unwrap().unwrap();
        assert_eq!(bench.file_name().unwrap(), "bench-2.csv");
        let scaling = newest_csv(&dir, SCALING_COLUMNS).unwrap().unwrap();
        assert_eq!(scaling.file_name().unwrap(), "scaling-3.csv");
        let csv = Csv::read(&bench).unwrap();
        assert_eq!(csv.stamp(), "2");
        assert_eq!(csv.rows[0]["row"], "(c) x");
        assert_eq!(num(&csv.rows[0], "p50_us"), Some(41.0));
        assert!(
            newest_csv(&dir.join("missing"), BENCH_COLUMNS)
                .unwrap()
                .is_none()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
