// The report's style sheet, inlined into the page.

enum ReportStyle {
    static let css = """
        :root{color-scheme:light}
        body{margin:0;background:#f4f5f7;color:#1d1f23;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
        main{max-width:1220px;margin:0 auto;padding:20px 24px 40px}
        header,section{background:#fff;border:1px solid #dde0e5;border-radius:8px;padding:14px 20px 18px;margin:0 0 18px}
        h1{font-size:21px;margin:2px 0 6px}
        h2{font-size:17px;margin:0 0 10px;color:#24292f}
        h3{font-size:14px;margin:14px 0 6px;color:#444}
        .status{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;font-size:13px;background:#e8eaed}
        .status-running{background:#dceefa;color:#004d7a}
        .status-finished{background:#daf2e6;color:#00553a}
        .status-early_stopped{background:#fff1d6;color:#6b4a00}
        .status-stopped{background:#fff1d6;color:#6b4a00}
        .status-error{background:#fde2d8;color:#8a2a00}
        .message{color:#555}
        dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:3px 18px;margin:10px 0 12px}
        dl.facts dt{color:#5b616b}
        dl.facts dd{margin:0;overflow-wrap:anywhere}
        table.metrics{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}
        table.metrics th,table.metrics td{padding:4px 14px;border-bottom:1px solid #e6e8eb;text-align:right}
        table.metrics th:first-child{text-align:left}
        table.metrics thead th{color:#5b616b;font-weight:600}
        table.metrics caption{text-align:left;color:#5b616b;padding-bottom:4px}
        .charts{display:flex;flex-wrap:wrap;gap:14px}
        svg.chart{width:100%;max-width:560px;height:auto;background:#fff}
        svg.square{max-width:440px}
        svg.histogram{width:250px;height:auto}
        svg.unit{width:96px;height:auto}
        .multiples{display:flex;flex-wrap:wrap;gap:8px}
        .regions-row{display:flex;flex-wrap:wrap;gap:20px;align-items:flex-start}
        .regions-legend{max-width:320px}
        ul.key{list-style:none;padding:0;margin:6px 0}
        ul.key li{margin:3px 0}
        .swatch{display:inline-block;width:14px;height:14px;border-radius:3px;vertical-align:-2px;margin-right:8px;border:1px solid #0002}
        .note{color:#4a4f57;max-width:900px}
        ul.notes{margin:0;padding-left:20px;color:#4a4f57}
        footer{color:#6b717b;font-size:12px;text-align:center}
        .grid{stroke:#eceef1;stroke-width:1}
        .tick-mark{stroke:#888}
        .frame{fill:none;stroke:#9aa0a8;stroke-width:1}
        text{font-family:inherit}
        .tick{font-size:11px;fill:#4a4f57}
        .axis-label{font-size:12px;fill:#33373d}
        .chart-title{font-size:13px;font-weight:600;fill:#24292f}
        .chart-title.small{font-size:11px}
        .legend-box{fill:#fff;fill-opacity:.88;stroke:#dde0e5}
        .legend-text{font-size:11px;fill:#33373d}
        .points circle{stroke:#fff;stroke-width:.9}
        """
}
