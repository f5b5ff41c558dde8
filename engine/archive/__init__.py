"""The opt-in lead archive: scored leads kept for retraining and audit, PII sealed.

Off by default: with ``LEAD_ARCHIVE_DIR`` unset the service writes no lead data anywhere.
When a deployment sets it, each worker keeps its scored leads (model features only, with
vertical, model version, lead id, time, score and acceptance), sealing PII-marked and
free-text values with AES-256-GCM under a rotatable archive key.

On disk::

    $LEAD_ARCHIVE_KEYS/            (default var/keys/archive, 0700)      keys.py
        <kid>.key                  one AES-256 key, hex (0600)
        CURRENT                    the key id new segments use
    $LEAD_ARCHIVE_DIR/             (0700)                                segments.py
        <vertical>/<start>-<pid>-<seg8>.jsonl[.open]   JSON lines (0600)   codec.py

Modules, one job each:

- ``keys``: key files, creation and rotation.
- ``codec``: the record format and its sealing (AES-256-GCM, associated data).
- ``policy``: which features are stored in clear and which sealed.
- ``segments``: append-only segment files, rotation, fsync.
- ``writer``: the worker's buffer and writer thread (``LeadArchive``).
- ``reader`` and ``export``: reading records back, the training CSV.
"""
