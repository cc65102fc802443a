"""The auditor's verifier, in parts; ``factory.verify`` is its public face.

- model.py: results (Check, ArtifactReport, Report) and their JSON form;
- trust.py: the pinned trust (trusted root, owner key, identity policy) and its fingerprints;
- index.py: a read-only view of a published index directory;
- targets.py: what a TARGET names (wheel, name==version, lock files, a venv, the index);
- checks.py: the per-artifact checks;
- intoto.py: in-toto layout and link verification, in process;
- installed.py: an installed distribution against the published wheel's RECORD;
- sbom.py: fast CycloneDX 1.6 schema validation;
- advisories.py: the advisory database opened for one lookup per package;
- render.py: Rich table, JSON and HTML reports;
- rebuild.py, equivalence.py: reproducibility and equivalence with upstream.
"""
