"""Issue 15, attack 7: one bad fund file stopped every run. A request CSV with an oversized
field raised an unhandled ``_csv.Error``; a 94 MB acknowledgement was read whole. Under Prefect,
against a real OpenSSH sshd: the fund's outbox holds a good request, a request with a 200 kB
field, a request that is not UTF-8, a malformed acknowledgement and a 94 MB one. The run
completes and answers the good request; each bad file is set aside in ``rejected/`` with a
sentence (the 94 MB one is never fetched), and the watch flow's checks raise one alert each.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from flows.exchange import exchange
from tasks.alerts import due_alerts
from tests.flows.test_exchange import PREPARER, _partner, _request, _settings
from tests.harness.warehouse_home import pupils_warehouse_home

HEADER = (
    "REF_CNSS;NUM_IMMATRICULATION;CIN_ASSURE;NOM_ASSURE;PRENOM_ASSURE;NOM_ENFANT;"
    "PRENOM_ENFANT;DATE_NAISSANCE;SEXE;CODE_MASSAR;TYPE_PRESTATION\r\n"
)
OVERSIZED = "CNSS_SCOL_2023-2024_0002.csv"
UNDECODABLE = "CNSS_SCOL_2023-2024_0003.csv"
MALFORMED_ACK = "CNSS_ACK_SCOL_2023-2024_000001.xml"
HUGE_ACK = "CNSS_ACK_SCOL_2023-2024_000002.xml"


@pytest.fixture(scope="module")
def warehouse_home(prefect_server, province, tmp_path_factory) -> Path:
    return pupils_warehouse_home(province, tmp_path_factory.mktemp("bad-fund-files") / "home").home


def test_bad_fund_files_are_set_aside_with_a_sentence_and_the_good_request_is_answered(
    warehouse_home, province, sftp_server, tmp_path
):
    home = tmp_path / "home"
    shutil.copytree(warehouse_home, home)
    settings = _settings(home, _partner(sftp_server), approval_timeout_hours=0)
    outbox = sftp_server.outbox
    good = _request(province)
    shutil.copy(good, outbox / good.name)
    field = '"' + "A" * 200_000 + '"'  # longer than the csv module's field limit
    (outbox / OVERSIZED).write_bytes(
        (HEADER + f"R1;1;C1;TEST;PARENT;{field};ENFANT;01/01/2012;M;;AF\r\n").encode()
    )
    (outbox / UNDECODABLE).write_bytes(HEADER.encode() + b"R2;2;C2;\xff\xfe\xfa;P;E;F;;M;;AF\r\n")
    (outbox / MALFORMED_ACK).write_bytes(b"<?xml version='1.0'?><Acknowledgement><Fund>")
    with open(outbox / HUGE_ACK, "wb") as huge:  # 94 MB of a sparse file: no disk used
        huge.truncate(94_000_000)

    result = exchange("cnss", settings, prepared_by=PREPARER)  # completes: no exception

    [batch] = result["batches"]  # the good request is answered (expired: nobody decided)
    assert batch["state"] == "expired" and batch["children"] > 0
    assert result["problems"] == []
    partner = settings.exchange / "cnss"
    assert sorted(os.listdir(partner / "received")) == [good.name]
    rejected = partner / "rejected"
    kept = [OVERSIZED, UNDECODABLE, MALFORMED_ACK]  # the 94 MB one was never fetched
    notes = [f"{name}.txt" for name in (OVERSIZED, UNDECODABLE, MALFORMED_ACK, HUGE_ACK)]
    assert sorted(os.listdir(rejected)) == sorted(kept + notes)
    assert (rejected / OVERSIZED).read_bytes() == (outbox / OVERSIZED).read_bytes()
    sentences = {
        name: (rejected / f"{name}.txt").read_text(encoding="utf-8").splitlines()[0]
        for name in (OVERSIZED, UNDECODABLE, MALFORMED_ACK, HUGE_ACK)
    }
    for sentence in sentences.values():  # one sentence a person acts on, no traceback
        assert sentence.endswith(".") and "Traceback" not in sentence
    assert "line 2 cannot be read as CSV" in sentences[OVERSIZED]
    assert "is not utf-8 text" in sentences[UNDECODABLE]
    assert "not well-formed XML" in sentences[MALFORMED_ACK]
    assert "94.0 MB, more than the 5.0 MB allowed" in sentences[HUGE_ACK]
    assert "A" * 100 not in sentences[OVERSIZED]  # the field itself is never quoted

    keys = [a.key for a in due_alerts(settings) if a.kind == "fund_file_set_aside"]
    assert sorted(k.rsplit(":", 1)[0] for k in keys) == sorted(
        f"fund-file-set-aside:cnss:{name}"
        for name in (OVERSIZED, UNDECODABLE, MALFORMED_ACK, HUGE_ACK)
    )

    again = exchange("cnss", settings, prepared_by=PREPARER)  # set aside: not fetched again
    assert again["batches"] == [] and again["problems"] == []
    assert len(os.listdir(rejected)) == 7
