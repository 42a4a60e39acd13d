//! The runbooks shipped with quench, built into the binary so that a bare
//! `quench rehearse aws-access-key-compromise` works anywhere. A file of the
//! same name in the runbooks directory takes precedence.

pub const ALL: &[(&str, &str)] = &[
    (
        "aws-access-key-compromise",
        include_str!("../runbooks/aws-access-key-compromise.yaml"),
    ),
    (
        "github-token-compromise",
        include_str!("../runbooks/github-token-compromise.yaml"),
    ),
    (
        "slack-token-compromise",
        include_str!("../runbooks/slack-token-compromise.yaml"),
    ),
    (
        "vault-token-compromise",
        include_str!("../runbooks/vault-token-compromise.yaml"),
    ),
    (
        "api-key-compromise",
        include_str!("../runbooks/api-key-compromise.yaml"),
    ),
    (
        "aws-access-key-rotation",
        include_str!("../runbooks/aws-access-key-rotation.yaml"),
    ),
    (
        "api-key-rotation",
        include_str!("../runbooks/api-key-rotation.yaml"),
    ),
];

pub fn get(name: &str) -> Option<&'static str> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}
