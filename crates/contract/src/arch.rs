//! The CPU architectures EC2 instances have, and which one an instance type is. Pure, no I/O.

/// A CPU architecture EC2 instances have: one worker binary each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Arch {
    /// x86_64 (Intel, AMD).
    X86_64,
    /// aarch64 (Graviton).
    Aarch64,
}

impl Arch {
    /// The architecture of an instance type: Graviton types (`m7g`, `c7gn`, `r8gd`, `im4gn`,
    /// `t4g`…) are arm64, the rest x86_64.
    pub fn of_instance_type(instance_type: &str) -> Arch {
        let family = instance_type.split('.').next().unwrap_or_default();
        // the generation digit followed by `g` marks Graviton (e.g. m7g, im4gn, is4gen)
        let graviton = family
            .char_indices()
            .any(|(i, c)| c.is_ascii_digit() && family[i + 1..].starts_with('g'));
        if graviton { Arch::Aarch64 } else { Arch::X86_64 }
    }

    /// This machine's architecture.
    pub fn host() -> Arch {
        if std::env::consts::ARCH == "aarch64" {
            Arch::Aarch64
        } else {
            Arch::X86_64
        }
    }

    /// The name `uname -m` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graviton_families_are_arm64() {
        for t in [
            "m7g.xlarge",
            "c7gn.large",
            "r8gd.2xlarge",
            "im4gn.large",
            "t4g.micro",
            "is4gen.large",
        ] {
            assert_eq!(Arch::of_instance_type(t), Arch::Aarch64, "{t}");
        }
        for t in [
            "m7i.xlarge",
            "c6a.large",
            "r5.large",
            "g5.xlarge",
            "m5dn.large",
            "i4i.4xlarge",
            "t3.micro",
        ] {
            assert_eq!(Arch::of_instance_type(t), Arch::X86_64, "{t}");
        }
    }
}
