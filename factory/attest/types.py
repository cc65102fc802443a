"""The type URIs of what the factory attests: the in-toto statement, the SLSA
provenance predicate and its build type, the CycloneDX predicate, the upstream
equivalence predicate.

A module of its own so that a verifier can name them without loading the
builders of provenance and SBOMs (CycloneDX's models alone take 0.1 s to import).
"""

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
# The schema of our external/internal parameters; bump the /v1 on any
# incompatible change. A name, not a page: docs/provenance.md describes it.
BUILD_TYPE = "https://factory.invalid/build-types/python-wheel-from-sdist/v1"
SBOM_PREDICATE_TYPE = "https://cyclonedx.org/bom"
# The signed statement that a wheel is (or is not) equivalent to upstream's own
# (factory.verify.equivalence).
EQUIVALENCE_PREDICATE_TYPE = "https://factory.invalid/attestations/upstream-equivalence/v1"
