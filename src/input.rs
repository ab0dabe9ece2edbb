//! Reading the documents a command is given: a file, or standard input for `-`. I/O.

/// Reads a file, or standard input for `-`.
pub fn read_input(path: &std::path::Path) -> std::io::Result<String> {
    if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
}
