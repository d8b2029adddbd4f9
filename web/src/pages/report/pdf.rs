//! The SLA report as a PDF document, written with `pdf-writer` and no browser: landscape A4
//! pages in Helvetica (one of the fonts every PDF reader has, so nothing is embedded), with the
//! policy, a table and a daily availability chart per system, and its longest incidents. The
//! figures are the same [`Report`] as the other forms'.

use crate::read::sla_report::{Report, Row, SystemReport};
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

const WIDTH: f32 = 842.0;
const HEIGHT: f32 = 595.0;
const MARGIN: f32 = 40.0;
const REGULAR: Name<'static> = Name(b"F1");
const BOLD: Name<'static> = Name(b"F2");

/// Right edges of the table's number columns, after the name column.
const COLUMNS: [(&str, f32); 10] = [
    ("Availability", 275.0),
    ("Objective", 325.0),
    ("Budget left", 385.0),
    ("Down", 435.0),
    ("Degraded", 490.0),
    ("Maintenance", 555.0),
    ("Unknown", 610.0),
    ("Incidents", 660.0),
    ("MTTR", 720.0),
    ("MTBF", 802.0),
];

/// `text` in WinAnsiEncoding, the base fonts' encoding: Latin-1 as it is, a few typographic
/// marks where WinAnsi has them, and `?` for anything else.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            '\u{20}'..='\u{7e}' | '\u{a0}'..='\u{ff}' => c as u8,
            '–' => 0x96,
            '—' => 0x97,
            '…' => 0x85,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            _ => b'?',
        })
        .collect()
}

/// Width of `text` in Helvetica at `size`: exact for figures (every digit is 556/1000 em),
/// near enough for words.
fn width(text: &str, size: f32) -> f32 {
    let units: u32 = text
        .chars()
        .map(|c| match c {
            '0'..='9' => 556,
            '.' | ',' | ' ' | ':' | '/' => 278,
            '%' => 889,
            '-' => 333,
            'A'..='Z' => 667,
            'i' | 'j' | 'l' => 222,
            'm' | 'w' => 833,
            _ => 556,
        })
        .sum();
    units as f32 * size / 1000.0
}

/// Cuts `text` to fit `max` points at `size`.
fn fit(text: &str, size: f32, max: f32) -> String {
    if width(text, size) <= max {
        return text.to_owned();
    }
    let mut out = String::new();
    for c in text.chars() {
        if width(&format!("{out}{c}..."), size) > max {
            break;
        }
        out.push(c);
    }
    format!("{out}...")
}

/// Pages being written, top to bottom.
struct Doc {
    pages: Vec<Content>,
    page: Content,
    y: f32,
}

impl Doc {
    fn new() -> Self {
        Doc { pages: vec![], page: Content::new(), y: HEIGHT - MARGIN }
    }

    /// Room for `height` more points on this page, or a new page (then `true`).
    fn room(&mut self, height: f32) -> bool {
        if self.y - height < MARGIN {
            let done = std::mem::replace(&mut self.page, Content::new());
            self.pages.push(done);
            self.y = HEIGHT - MARGIN;
            return true;
        }
        false
    }

    fn text(&mut self, x: f32, y: f32, size: f32, bold: bool, text: &str) {
        self.page.set_fill_gray(0.1);
        self.page.begin_text();
        self.page.set_font(if bold { BOLD } else { REGULAR }, size);
        self.page.next_line(x, y);
        self.page.show(Str(&win_ansi(text)));
        self.page.end_text();
    }

    fn right(&mut self, right: f32, y: f32, size: f32, bold: bool, text: &str) {
        self.text(right - width(text, size), y, size, bold, text);
    }

    /// A line of text at the left margin, moving down.
    fn line(&mut self, size: f32, bold: bool, text: &str) {
        self.room(size * 1.5);
        self.y -= size * 1.5;
        let y = self.y;
        self.text(MARGIN, y, size, bold, &fit(text, size, WIDTH - 2.0 * MARGIN));
    }

    fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, rgb: (f32, f32, f32)) {
        self.page.set_fill_rgb(rgb.0, rgb.1, rgb.2);
        self.page.rect(x, y, w, h);
        self.page.fill_nonzero();
    }

    fn finish(mut self) -> Vec<Content> {
        self.pages.push(self.page);
        self.pages
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The table's column titles, at the next line.
fn header(doc: &mut Doc) {
    doc.room(24.0);
    doc.y -= 13.0;
    let y = doc.y;
    for (title, right) in COLUMNS {
        doc.right(right, y, 7.5, true, title);
    }
    doc.y -= 9.0;
    let y = doc.y;
    let units = ["%", "%", "min", "min", "min", "min", "min", "", "min", "min"];
    for ((_, right), unit) in COLUMNS.iter().zip(units) {
        doc.right(*right, y, 6.5, false, unit);
    }
}

fn row(doc: &mut Doc, name: &str, r: &Row, availability: &str, budget: Option<(f64, f64)>, bold: bool) {
    if doc.room(14.0) {
        header(doc);
    }
    doc.y -= 13.0;
    let y = doc.y;
    doc.text(MARGIN, y, 9.0, bold, &fit(name, 9.0, 195.0));
    let cells = [
        availability.to_owned(),
        budget.map(|(t, _)| format!("{t} %")).unwrap_or_default(),
        budget.map(|(_, left)| left.to_string()).unwrap_or_default(),
        r.down_minutes.to_string(),
        r.degraded_minutes.to_string(),
        r.maintenance_minutes.to_string(),
        r.unknown_minutes.to_string(),
        r.incidents.to_string(),
        opt(r.mttr_minutes),
        opt(r.mtbf_minutes),
    ];
    for ((_, right), cell) in COLUMNS.iter().zip(cells) {
        doc.right(*right, y, 9.0, bold, &cell);
    }
}

fn band_colour(band: &str) -> (f32, f32, f32) {
    match band {
        "ok" => (0.18, 0.64, 0.31),
        "degraded" => (0.83, 0.65, 0.17),
        "failed" => (0.71, 0.14, 0.09),
        _ => (0.55, 0.58, 0.62),
    }
}

/// Availability per day as bars from 90 % (empty) to 100 % (full).
fn chart(doc: &mut Doc, s: &SystemReport) {
    let height = 60.0;
    doc.room(height + 40.0);
    doc.line(9.0, true, "Availability per day (the bar's height from 90 % to 100 %; its colour against the objective)");
    doc.y -= height + 6.0;
    let base = doc.y;
    let step = (WIDTH - 2.0 * MARGIN - 40.0) / 31.0;
    doc.rect(MARGIN + 30.0, base, 0.5, height, (0.6, 0.6, 0.6));
    doc.right(MARGIN + 26.0, base + height - 3.0, 7.0, false, "100 %");
    doc.right(MARGIN + 26.0, base, 7.0, false, "90 %");
    for (i, day) in s.daily.iter().enumerate() {
        let x = MARGIN + 34.0 + i as f32 * step;
        let share = day.availability_pct.map_or(0.0, |p| ((p - 90.0) / 10.0).clamp(0.0, 1.0) as f32);
        doc.rect(x, base, step * 0.8, (height * share).max(4.0), band_colour(day.band));
        if i % 5 == 0 || i + 1 == s.daily.len() {
            let label = day.date.get(8..10).unwrap_or("").trim_start_matches('0').to_owned();
            doc.text(x, base - 9.0, 7.0, false, &label);
        }
    }
    doc.y = base - 12.0;
}

/// The report as a PDF document. Evidence is printed as links under `base`, the dashboard's
/// address (`http://host:8080/`), when it is known.
pub fn pdf(report: &Report, made_at: &str, base: &str) -> Vec<u8> {
    let mut doc = Doc::new();
    doc.line(16.0, true, &format!("SLA report {}", report.month));
    doc.line(
        9.0,
        false,
        &format!(
            "From {} to {}. Minutes are minutes of the month. Made by sitrep on {made_at}.",
            crate::view::utc_text(report.from),
            crate::view::utc_text(report.to)
        ),
    );
    doc.y -= 4.0;
    doc.line(11.0, true, "How time is counted");
    for l in &report.policy.text {
        doc.line(9.0, false, &format!("• {l}"));
    }
    doc.line(
        9.0,
        false,
        "A system's or group's minutes are the mean of its components' minutes. Availability is up / (up + down).",
    );
    if report.systems.is_empty() {
        doc.line(10.0, false, &format!("No system reported anything in {}.", report.month));
    }
    for s in &report.systems {
        doc.room(120.0);
        doc.y -= 8.0;
        doc.line(13.0, true, &format!("{}: {}", s.system, s.availability_text));
        header(&mut doc);
        row(
            &mut doc,
            &format!("{} (all)", s.system),
            &s.row,
            &s.availability_text,
            Some((s.budget.target_pct, s.budget.left_minutes)),
            true,
        );
        for g in &s.groups {
            row(
                &mut doc,
                &g.group,
                &g.row,
                &g.availability_text,
                Some((g.budget.target_pct, g.budget.left_minutes)),
                false,
            );
        }
        for c in &s.components {
            row(&mut doc, &c.component, &c.row, &c.availability_text, None, false);
        }
        doc.y -= 6.0;
        chart(&mut doc, s);
        if s.longest.is_empty() {
            doc.line(9.0, false, "No incidents this month.");
        } else {
            doc.line(10.0, true, "Longest incidents");
            for l in &s.longest {
                doc.line(
                    9.0,
                    false,
                    &format!(
                        "{}: {} min, {} to {}, {}{}",
                        l.component,
                        l.minutes,
                        crate::view::utc_text(l.from),
                        crate::view::utc_text(l.to),
                        l.cause,
                        l.evidence
                            .as_deref()
                            .map(|e| format!(" (evidence: {}{e})", base.trim_end_matches('/')))
                            .unwrap_or_default()
                    ),
                );
            }
        }
    }
    let pages = doc.finish();
    let mut pdf = Pdf::new();
    let (catalog, tree, regular, bold, info) = (Ref::new(1), Ref::new(2), Ref::new(3), Ref::new(4), Ref::new(5));
    pdf.catalog(catalog).pages(tree);
    let ids: Vec<(Ref, Ref)> = (0..pages.len() as i32).map(|i| (Ref::new(10 + 2 * i), Ref::new(11 + 2 * i))).collect();
    pdf.pages(tree).kids(ids.iter().map(|(p, _)| *p)).count(pages.len() as i32);
    for ((page_id, content_id), content) in ids.iter().zip(pages) {
        let mut page = pdf.page(*page_id);
        page.media_box(Rect::new(0.0, 0.0, WIDTH, HEIGHT));
        page.parent(tree);
        page.contents(*content_id);
        let mut resources = page.resources();
        resources.fonts().pair(REGULAR, regular).pair(BOLD, bold);
        resources.finish();
        page.finish();
        pdf.stream(*content_id, &content.finish());
    }
    pdf.type1_font(regular).base_font(Name(b"Helvetica")).encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold).base_font(Name(b"Helvetica-Bold")).encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.document_info(info).title(TextStr(&format!("SLA report {}", report.month))).creator(TextStr("sitrep"));
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_written_in_win_ansi_and_figures_are_measured_exactly() {
        assert_eq!(win_ansi("99.5 % · a–b ≥"), b"99.5 % \xb7 a\x96b ?");
        assert_eq!(width("99.853 %", 10.0), (5.0 * 556.0 + 278.0 + 278.0 + 889.0) * 10.0 / 1000.0);
        assert!(fit(&"x".repeat(200), 9.0, 100.0).ends_with("..."));
    }
}
