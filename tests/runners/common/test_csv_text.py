"""A CSV file's text columns reach the trainer as the text the host check read: pandas would read
a column of digits as numbers ("007" as 7), and a prompt of numbers then crashed the runner."""

from __future__ import annotations

from pathlib import Path

from aligntune.core.sections import DataSource
from aligntune.runners.common.sources import load_source


def test_csv_text_columns_stay_text_and_labels_stay_booleans(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text(
        "question,completion,label,score\n007,4.50,True,3\n12,1e3,false,4\n", encoding="utf-8"
    )
    source = DataSource(path="./d.csv", columns={"prompt": "question"})
    rows = [dict(row) for row in load_source(source, tmp_path, "data.train")]
    assert rows == [
        {"prompt": "007", "completion": "4.50", "label": True, "score": 3},
        {"prompt": "12", "completion": "1e3", "label": False, "score": 4},
    ]
