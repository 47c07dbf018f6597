"""Exchange profiles: how one partner fund asks about children and how the platform answers.

A :class:`~connectors.exchange.profile.Profile` is declared once per fund
(``connectors/cnss/profile.py``, ``connectors/cmr/profile.py``) and says everything that differs
between funds. The machinery is shared and the same for every fund, one module per job:

* ``profile.py``: what a fund's profile declares (``Profile``, ``RequestLayout``, ``CsvLayout``);
  the fund profiles import only this module;
* ``registry.py``: every fund's profile, found through the fund registry (ground/funds.py);
* ``request_file.py``: reading a fund's request into :class:`~schemas.exchange.ChildRequest`;
* ``file_names.py``: the names of a batch's files, of acknowledgements, school-year tags;
* ``response_files.py``: the response XML and CSV (only ``ChildAnswer.CONTRACTED`` fields
  leave, and of those only what the status carries), and the CSV read back;
* ``batch_files.py``: the manifest and every signed file of a batch;
* ``acknowledgement.py``: the fund's receipt, bound to the sha256 of the file it received;
* ``untrusted_xml.py``: XML from outside parsed safely, checked against our XSDs;
* ``file_error.py``: :class:`ExchangeFileError`, a fund file that cannot be read.

Nothing here imports the registry but the modules that look a profile up by name; the fund
profiles import ``profile.py`` only, so profiles and machinery no longer import each other.
The specification a partner reads is ``docs/exchange-spec.md``.
"""
