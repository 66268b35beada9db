"""Reports: paper-shaped markdown tables and PNG plots from the flat result rows that runs write.

rows = load_rows([run_dir, ...])        # validated, merged
write_report(rows, out_dir, title)      # -> out_dir/report.md (+ report_plots/*.png)
"""

from langshift.report.rows import load_rows
from langshift.report.write import write_report

__all__ = ["load_rows", "write_report"]
