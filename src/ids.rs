//! Names that become paths. A case id or a submission name is joined onto folders, so it is
//! checked here once: no separators, no `..`, no leading dot, nothing a shell or a file system
//! treats specially.

/// Letters, digits, `-`, `_` and `.`; 1 to 64 characters; not starting with a dot.
pub fn is_safe_name(name: &str) -> bool {
    is_safe(name, 64)
}

/// Case ids follow the same rule with up to 128 characters.
pub fn is_valid_case_id(id: &str) -> bool {
    is_safe(id, 128)
}

fn is_safe(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_anything_that_could_form_a_path() {
        for bad in [
            "", "..", ".hidden", "a/b", "a\\b", "../etc", "a b", "é", "x\0y",
        ] {
            assert!(!is_valid_case_id(bad), "{bad:?} was accepted");
        }
        assert!(!is_safe_name(&"a".repeat(65)));
        for good in ["case-0001", "CT_17.v2", "a"] {
            assert!(is_valid_case_id(good), "{good:?} was rejected");
        }
    }
}
