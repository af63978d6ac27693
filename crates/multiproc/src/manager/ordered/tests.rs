use super::OrderedMap;

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn keys(m: &OrderedMap) -> Vec<String> {
    m.keys()
        .map(|k| String::from_utf8(k.clone()).unwrap())
        .collect()
}

#[test]
fn keeps_insertion_order_like_a_python_dict() {
    let mut m = OrderedMap::default();
    for k in ["c", "a", "b"] {
        assert_eq!(m.insert(b(k), b(k)), None);
    }
    assert_eq!(m.insert(b("a"), b("A")), Some(b("a"))); // replacing keeps the place
    assert_eq!(keys(&m), ["c", "a", "b"]);
    assert_eq!(m.remove(b"c"), Some(b("c")));
    m.insert(b("c"), b("C")); // removed and inserted again: at the end
    assert_eq!(keys(&m), ["a", "b", "c"]);
    assert_eq!(m.get(b"a"), Some(&b("A")));
    assert_eq!(m.get_or_insert(b("a"), b("x")), &b("A"));
    assert_eq!(m.get_or_insert(b("d"), b("D")), &b("D"));
    assert_eq!(m.len(), 4);
    assert!(m.contains_key(b"d") && !m.contains_key(b"z"));
}

#[test]
fn removals_compact_and_the_index_stays_right() {
    let mut m = OrderedMap::default();
    for i in 0..1000u32 {
        m.insert(i.to_be_bytes().to_vec(), i.to_le_bytes().to_vec());
    }
    for i in (0..1000u32).filter(|i| i % 3 != 0) {
        assert!(m.remove(&i.to_be_bytes()).is_some());
    }
    assert!(
        m.entries.len() <= 2 * m.len() + 8,
        "holes were not compacted"
    );
    let left: Vec<u32> = m
        .keys()
        .map(|k| u32::from_be_bytes(k[..].try_into().unwrap()))
        .collect();
    assert_eq!(left, (0..1000).filter(|i| i % 3 == 0).collect::<Vec<_>>());
    for i in (0..1000u32).filter(|i| i % 3 == 0) {
        assert_eq!(m.get(&i.to_be_bytes()), Some(&i.to_le_bytes().to_vec()));
    }
    m.clear();
    assert_eq!(m.len(), 0);
    assert_eq!(m.iter().count(), 0);
}
