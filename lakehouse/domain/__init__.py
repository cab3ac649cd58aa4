"""What the platform knows about markets, a package per concern: ``validation`` (the rules a
price or reading is judged by, the holds, the on-demand check), ``intake`` (reports, news files
and headlines, times people write), ``accounts`` (the registry of devices and users, their
subscriptions, the MQTT broker's credentials, the migrations), ``supply_chain`` and ``briefs``;
beside them the price metrics (``metrics``) and the price ledger (``ledger``). May import
``lakehouse.config``, ``lakehouse.catalog`` and ``lakehouse.io``."""
