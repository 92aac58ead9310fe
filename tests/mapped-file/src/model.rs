//! The exerciser's model of a file: the bytes it must hold. Plain `Vec<u8>` semantics with the
//! file-system rules spelled out: writes past the end fill the gap with zeros, reads stop at the
//! end of file, truncation cuts or zero-extends.

/// What one file should contain.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FileModel {
    bytes: Vec<u8>,
}

impl FileModel {
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// What read() of `len` bytes at `offset` returns: short at end of file, empty past it.
    pub fn read(&self, offset: usize, len: usize) -> &[u8] {
        let start = offset.min(self.bytes.len());
        let end = offset.saturating_add(len).min(self.bytes.len());
        &self.bytes[start..end]
    }

    /// write(): extends the file (zeros in any gap) when it ends past the end of file.
    pub fn write(&mut self, offset: usize, data: &[u8]) {
        let end = offset + data.len();
        if end > self.bytes.len() {
            self.bytes.resize(end, 0);
        }
        self.bytes[offset..end].copy_from_slice(data);
    }

    /// A store through a view: must lie inside the file, since a view never extends it.
    pub fn store(&mut self, offset: usize, data: &[u8]) {
        assert!(
            offset + data.len() <= self.bytes.len(),
            "mapped store past end of file"
        );
        self.write(offset, data);
    }

    /// ftruncate / SetEndOfFile: cut, or extend with zeros.
    pub fn set_len(&mut self, len: usize) {
        self.bytes.resize(len, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::FileModel;

    #[test]
    fn write_past_end_fills_gap_with_zeros() {
        let mut m = FileModel::default();
        m.write(3, b"ab");
        assert_eq!(m.bytes(), b"\0\0\0ab");
    }

    #[test]
    fn read_is_short_at_end_and_empty_past_it() {
        let mut m = FileModel::default();
        m.write(0, b"hello");
        assert_eq!(m.read(3, 10), b"lo");
        assert_eq!(m.read(9, 10), b"");
    }

    #[test]
    fn shrink_then_extend_gives_zeros() {
        let mut m = FileModel::default();
        m.write(0, b"hello");
        m.set_len(2);
        m.set_len(4);
        assert_eq!(m.bytes(), b"he\0\0");
    }
}
