//! A static library (`ar` archive, System V / GNU variant) of object files, with the
//! symbol index linkers need to pull members in ("archive has no index" otherwise).
//! Format facts: a global header `!<arch>\n`; per member a 60-byte header (name 16,
//! date 12, uid 6, gid 6, mode 8 octal, size 10, "`\n") and its data padded to an even
//! length; the index is the first member, named "/": a big-endian u32 count, the
//! members' header offsets per symbol, then the NUL-terminated symbol names.

/// An archive of `members` (name, object bytes; names at most 15 bytes) whose index maps
/// each of `symbols` (name, member index) to the member that defines it.
pub(crate) fn write(members: &[(&str, &[u8])], symbols: &[(String, usize)]) -> Vec<u8> {
    let mut index = Vec::new();
    index.extend((symbols.len() as u32).to_be_bytes());
    let index_len = 4 + 4 * symbols.len() + symbols.iter().map(|(s, _)| s.len() + 1).sum::<usize>();
    // Where each member's header starts.
    let mut offsets = Vec::with_capacity(members.len());
    let mut at = 8 + 60 + index_len.next_multiple_of(2);
    for (_, data) in members {
        offsets.push(at);
        at += 60 + data.len().next_multiple_of(2);
    }
    for (_, member) in symbols {
        index.extend((offsets[*member] as u32).to_be_bytes());
    }
    for (name, _) in symbols {
        index.extend(name.as_bytes());
        index.push(0);
    }
    let mut out = b"!<arch>\n".to_vec();
    member(&mut out, "/", &index, "0");
    for (name, data) in members {
        debug_assert!(name.len() <= 15 && !name.contains('/'));
        member(&mut out, &format!("{name}/"), data, "644");
    }
    out
}

fn member(out: &mut Vec<u8>, name: &str, data: &[u8], mode: &str) {
    let header = format!("{name:<16}{:<12}{:<6}{:<6}{mode:<8}{:<10}`\n", 0, 0, 0, data.len());
    debug_assert_eq!(header.len(), 60);
    out.extend(header.as_bytes());
    out.extend(data);
    if data.len() % 2 == 1 {
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout by hand: index member first, offsets pointing at member headers.
    #[test]
    fn the_index_points_at_the_defining_members() {
        let a = write(&[("a.o", b"abc"), ("b.o", b"wxyz")], &[("f".into(), 0), ("gh".into(), 1)]);
        assert_eq!(&a[..8], b"!<arch>\n");
        assert_eq!(&a[8..24], b"/               ");
        // Index: count 2, two offsets, "f\0gh\0" = 4 + 8 + 5 = 17 bytes, padded to 18.
        assert_eq!(&a[56..66], b"17        ");
        let index = &a[68..85];
        assert_eq!(&index[..4], &2u32.to_be_bytes());
        let first = u32::from_be_bytes(index[4..8].try_into().unwrap()) as usize;
        let second = u32::from_be_bytes(index[8..12].try_into().unwrap()) as usize;
        assert_eq!(&index[12..], b"f\0gh\0");
        assert_eq!(first, 8 + 60 + 18);
        assert_eq!(&a[first..first + 16], b"a.o/            ");
        assert_eq!(&a[first + 60..first + 63], b"abc");
        // 3 bytes of data padded to 4.
        assert_eq!(second, first + 60 + 4);
        assert_eq!(&a[second..second + 4], b"b.o/");
        assert_eq!(&a[second + 60..], b"wxyz");
    }
}
