"""Hold-out rows of entities whose record was quarantined are set apart, not scored with blanked inputs."""

import polars as pl

from mlplatform.core.holdout import quarantined_entities, without_entities


def test_only_entities_without_any_valid_record_are_quarantined():
    quarantined = pl.DataFrame({"customer_id": ["7", "8", None, "9"], "monthly_fee": ["-20", "-5", "3", "x"]})
    validated = pl.DataFrame({"customer_id": [1, 2, 9]})  # 9's duplicate was quarantined, one record is valid
    assert quarantined_entities(quarantined, validated, "customer_id").to_list() == ["7", "8"]
    assert quarantined_entities(pl.DataFrame(), validated, "customer_id").to_list() == []


def test_their_rows_are_set_apart_and_every_other_row_is_kept():
    test = pl.DataFrame({"customer_id": [1, 7, 2, 7, 8, None], "churned": [0, 1, 0, 0, 1, 0]})
    kept, apart = without_entities(test, "customer_id", pl.Series(["7", "8"]))
    assert kept["customer_id"].to_list() == [1, 2, None]
    assert apart["customer_id"].to_list() == [7, 7, 8]
    assert kept.height + apart.height == test.height
