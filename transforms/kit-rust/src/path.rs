//! Dotted paths into a message (`traits.email`, `context.device.id`): the way
//! settings name fields.

use serde_json::{Map, Value};

/// The value at a dotted path, if every step is an object key.
pub fn get_path<'a>(message: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let (parents, last) = split(path);
    let mut here = message;
    for key in parents {
        here = here.get(key)?.as_object()?;
    }
    here.get(last)
}

/// Remove the value at a dotted path and return it.
pub fn take_path(message: &mut Map<String, Value>, path: &str) -> Option<Value> {
    let (parents, last) = split(path);
    let mut here = message;
    for key in parents {
        here = here.get_mut(key)?.as_object_mut()?;
    }
    here.remove(last)
}

/// Set the value at a dotted path, creating the objects on the way (a step
/// that is there but not an object is left alone: `false` then).
pub fn set_path(message: &mut Map<String, Value>, path: &str, value: Value) -> bool {
    let (parents, last) = split(path);
    let mut here = message;
    for key in parents {
        let next = here
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        match next.as_object_mut() {
            Some(object) => here = object,
            None => return false,
        }
    }
    here.insert(last.to_string(), value);
    true
}

fn split(path: &str) -> (impl Iterator<Item = &str>, &str) {
    let (parents, last) = path.rsplit_once('.').unwrap_or(("", path));
    (parents.split('.').filter(|k| !k.is_empty()), last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_get_take_and_set() {
        let mut m = json!({"traits": {"email": "A@b.c"}, "n": 1})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(get_path(&m, "traits.email"), Some(&json!("A@b.c")));
        assert_eq!(get_path(&m, "n"), Some(&json!(1)));
        assert_eq!(get_path(&m, "n.x"), None);
        assert_eq!(get_path(&m, "traits.phone"), None);
        assert!(set_path(&mut m, "context.device.id", json!("d")));
        assert_eq!(get_path(&m, "context.device.id"), Some(&json!("d")));
        assert!(!set_path(&mut m, "n.x", json!(2)));
        assert_eq!(take_path(&mut m, "traits.email"), Some(json!("A@b.c")));
        assert_eq!(get_path(&m, "traits"), Some(&json!({})));
        assert_eq!(take_path(&mut m, "nothing.here"), None);
    }
}
