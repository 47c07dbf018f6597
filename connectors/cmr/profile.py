"""The CMR exchange profile, version 1.0 (docs/exchange-spec.md §CMR).

CMR asks about children of affiliated civil servants and pensioners for orphans' temporary
pensions (``PTO``) and family allowances (``AF``); it writes ``,`` separated LF files with ISO
dates and no sex column.
"""

from __future__ import annotations

from pathlib import Path

from connectors.exchange.profile import CsvLayout, Profile, RequestLayout
from schemas.exchange import FAMILY_ALLOWANCE, ORPHAN_PENSION

_HERE = Path(__file__).parent

PROFILE = Profile(
    fund="cmr",
    fund_name="Caisse Marocaine des Retraites",
    version="1.0",
    namespace="urn:massar:exchange:cmr:1.0",
    acknowledgement_namespace="urn:massar:exchange:cmr:acknowledgement:1.0",
    response_xsd=_HERE / "response.xsd",
    acknowledgement_xsd=_HERE / "acknowledgement.xsd",
    request=RequestLayout(
        file_name=r"CMR_SCOL_\d{4}-\d{4}_\d{4}\.csv",
        encoding="utf-8",
        delimiter=",",
        line_ending="\n",
        date_format="%Y-%m-%d",
        date_label="yyyy-mm-dd",
        columns={
            "fund_reference": "reference",
            "parent_number": "numero_affiliation",
            "parent_cin": "cin_affilie",
            "parent_family_name": "nom_affilie",
            "parent_first_name": "prenom_affilie",
            "child_family_name": "nom_enfant",
            "child_first_name": "prenom_enfant",
            "birth_date": "date_naissance",
            "student_code": "code_massar",
        },
        benefit_column="nature_prestation",
        benefits={"PTO": ORPHAN_PENSION, "AF": FAMILY_ALLOWANCE},
    ),
    response_csv=CsvLayout(
        encoding="utf-8",
        delimiter=",",
        line_ending="\n",
        date_format="%Y-%m-%d",
        date_label="yyyy-mm-dd",
        header={
            "fund_reference": "reference",
            "student_code": "code_massar",
            "school_year": "annee_scolaire",
            "status": "statut",
            "level_code": "code_niveau",
            "school_code": "code_etablissement",
            "leaving_date": "date_depart",
        },
    ),
    changes=("1.0: first version of the CMR profile.",),
)
