"""The CNSS exchange profile, version 1.0 (docs/exchange-spec.md §CNSS).

CNSS asks about children of insured parents for family allowances (``AF``) and survivors'
pensions (``PS``); it writes ``;`` separated CRLF files with dd/mm/yyyy dates.
"""

from __future__ import annotations

from pathlib import Path

from connectors.exchange.profile import CsvLayout, Profile, RequestLayout
from schemas.exchange import FAMILY_ALLOWANCE, SURVIVOR_PENSION

_HERE = Path(__file__).parent

PROFILE = Profile(
    fund="cnss",
    fund_name="Caisse Nationale de Sécurité Sociale",
    version="1.0",
    namespace="urn:massar:exchange:cnss:1.0",
    acknowledgement_namespace="urn:massar:exchange:cnss:acknowledgement:1.0",
    response_xsd=_HERE / "response.xsd",
    acknowledgement_xsd=_HERE / "acknowledgement.xsd",
    request=RequestLayout(
        file_name=r"CNSS_SCOL_\d{4}-\d{4}_\d{4}\.csv",
        encoding="utf-8",
        delimiter=";",
        line_ending="\r\n",
        date_format="%d/%m/%Y",
        date_label="dd/mm/yyyy",
        columns={
            "fund_reference": "REF_CNSS",
            "parent_number": "NUM_IMMATRICULATION",
            "parent_cin": "CIN_ASSURE",
            "parent_family_name": "NOM_ASSURE",
            "parent_first_name": "PRENOM_ASSURE",
            "child_family_name": "NOM_ENFANT",
            "child_first_name": "PRENOM_ENFANT",
            "birth_date": "DATE_NAISSANCE",
            "sex": "SEXE",
            "student_code": "CODE_MASSAR",
        },
        benefit_column="TYPE_PRESTATION",
        benefits={"AF": FAMILY_ALLOWANCE, "PS": SURVIVOR_PENSION},
    ),
    response_csv=CsvLayout(
        encoding="utf-8",
        delimiter=";",
        line_ending="\r\n",
        date_format="%d/%m/%Y",
        date_label="dd/mm/yyyy",
        header={
            "fund_reference": "REF_CNSS",
            "student_code": "CODE_MASSAR",
            "school_year": "ANNEE_SCOLAIRE",
            "status": "STATUT",
            "level_code": "CODE_NIVEAU",
            "school_code": "CODE_ETABLISSEMENT",
            "leaving_date": "DATE_DEPART",
        },
    ),
    changes=("1.0: first version of the CNSS profile.",),
)
