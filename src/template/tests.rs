use super::*;
use serde_json::json;

/// `examples/task-template.json`, the sample the demo and the CLI tests use.
fn sample() -> TaskTemplate {
    let text = include_str!("../../examples/task-template.json");
    TaskTemplate::from_json(&serde_json::from_str(text).unwrap()).unwrap()
}

fn reference(kind: &str, value: &str) -> ShapeReference {
    ShapeReference {
        kind: Some(kind.into()),
        value: Some(value.into()),
    }
}

/// A request that fills the sample template as it asks.
fn good() -> Shape {
    Shape {
        name: true,
        description: true,
        references: [
            ("orderId", reference("STRING", "o-1")),
            ("amount", reference("NUMBER", "42.5")),
            ("priority", reference("STRING", "high")),
            ("customerEmail", reference("EMAIL", "a@example.com")),
            ("orderUrl", reference("URL", "https://shop.example/o-1")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        ..Shape::default()
    }
}

#[test]
fn the_sample_template_reads_as_the_cli_prints_it() {
    let t = sample();
    assert_eq!(t.status, "ACTIVE");
    assert!(t.contact_flow_id.is_some());
    assert!(t.required.contains("orderId") && t.required.contains("priority"));
    assert_eq!(t.defaulted(), vec!["channel"]);
    assert_eq!(good().references.len(), 5);
    assert_eq!(t.check(&good()), vec![]);
}

fn problems(shape: &Shape) -> Vec<(String, String)> {
    sample()
        .check(shape)
        .into_iter()
        .map(|p| (p.field, p.rule))
        .collect()
}

#[test]
fn a_missing_required_field_is_named() {
    let mut shape = good();
    shape.references.remove("orderId");
    shape.name = false;
    let found = problems(&shape);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found
        .iter()
        .any(|(f, r)| f == "Name" && r.contains("the task's name")));
    assert!(found
        .iter()
        .any(|(f, r)| f == "orderId" && r.contains("a reference of that name")));
}

#[test]
fn a_reference_of_the_wrong_type_is_named() {
    let mut shape = good();
    shape
        .references
        .insert("amount".into(), reference("STRING", "42"));
    assert_eq!(
        problems(&shape),
        vec![(
            "amount".to_string(),
            "a NUMBER field takes a reference of type NUMBER, not STRING".to_string()
        )]
    );
}

#[test]
fn values_must_fit_their_fields_and_are_never_quoted() {
    let cases = [
        (
            "priority",
            "STRING",
            "urgent!",
            "not one of the field's options",
        ),
        ("amount", "NUMBER", "forty", "a NUMBER field takes a number"),
        (
            "customerEmail",
            "EMAIL",
            "nobody",
            "an EMAIL field takes an e-mail address",
        ),
        (
            "orderUrl",
            "URL",
            "ftp://x",
            "a URL field takes an http(s) URL",
        ),
        (
            "giftWrap",
            "STRING",
            "yes",
            "a BOOLEAN field takes true or false",
        ),
        (
            "dueAt",
            "DATE",
            "tomorrow",
            "a DATE_TIME field takes an epoch timestamp",
        ),
    ];
    for (field, kind, value, rule) in cases {
        let mut shape = good();
        shape
            .references
            .insert(field.into(), reference(kind, value));
        let found = problems(&shape);
        assert_eq!(
            found,
            vec![(field.to_string(), rule.to_string())],
            "{field}"
        );
        assert!(!found[0].1.contains(value));
    }
    let mut shape = good();
    shape
        .references
        .insert("orderId".into(), reference("STRING", &"x".repeat(512)));
    assert_eq!(
        problems(&shape)[0].1,
        "a TEXT field takes fewer than 512 characters"
    );
    shape
        .references
        .insert("orderId".into(), reference("STRING", &"x".repeat(511)));
    assert_eq!(problems(&shape), vec![]);
    // Rendered per event: nothing to say about the value yet.
    shape.references.insert(
        "priority".into(),
        ShapeReference {
            kind: Some("STRING".into()),
            value: None,
        },
    );
    assert_eq!(problems(&shape), vec![]);
}

#[test]
fn an_inactive_template_and_the_flow_rule() {
    let mut t = sample();
    t.status = "INACTIVE".into();
    assert_eq!(t.check(&good())[0].field, "Status");
    let mut shape = good();
    shape.contact_flow = true;
    assert!(sample().check(&shape)[0]
        .rule
        .contains("exactly one of ContactFlowId, QuickConnectId and TaskTemplateId"));
    let mut t = sample();
    t.contact_flow_id = None;
    assert!(t.check(&good())[0].rule.contains("no flow of its own"));
}

#[test]
fn fields_no_request_member_fills_are_said_so_unless_defaulted() {
    let template = |default: bool| {
        TaskTemplate::from_json(&json!({
            "Id": "t", "ContactFlowId": "f", "Status": "ACTIVE",
            "Fields": [{"Id": {"Name": "Who"}, "Type": "QUICK_CONNECT"}],
            "Constraints": {"RequiredFields": [{"Id": {"Name": "Who"}}]},
            "Defaults": {"DefaultFieldValues": if default { json!([{"Id": {"Name": "Who"}, "DefaultValue": "q"}]) } else { json!([]) }},
        }))
        .unwrap()
    };
    let found = template(false).check(&Shape::default());
    assert_eq!(found.len(), 1);
    assert!(found[0]
        .rule
        .contains("no StartTaskContact member can fill it"));
    assert_eq!(template(true).check(&Shape::default()), vec![]);
}

#[test]
fn a_rendered_request_has_the_shape_the_check_reads() {
    let request: TaskRequest = serde_json::from_value(json!({
        "Name": "n",
        "Description": " ",
        "TaskTemplateId": "t",
        "References": {"orderId": {"Type": "STRING", "Value": "o-1"}},
        "SegmentAttributes": {"connect:ContactExpiry": {"ValueMap": {"ExpiryDuration": {"ValueInteger": 60}}}},
    }))
    .unwrap();
    let shape = Shape::of(&request);
    assert!(shape.name && !shape.description && shape.expiry && !shape.scheduled_time);
    assert!(!shape.contact_flow && !shape.quick_connect);
    assert_eq!(shape.references["orderId"], reference("STRING", "o-1"));
}

#[test]
fn reference_types_follow_the_api_reference() {
    for (kind, wanted) in [
        ("TEXT", "STRING"),
        ("TEXT_AREA", "STRING"),
        ("BOOLEAN", "STRING"),
        ("SINGLE_SELECT", "STRING"),
        ("NUMBER", "NUMBER"),
        ("DATE_TIME", "DATE"),
        ("URL", "URL"),
        ("EMAIL", "EMAIL"),
    ] {
        assert_eq!(reference_type(kind), Some(wanted));
    }
    assert_eq!(reference_type("NAME"), None);
}

#[test]
fn an_empty_reference_fills_nothing_and_addresses_are_read_as_connect_reads_them() {
    let mut shape = good();
    shape
        .references
        .insert("orderId".into(), reference("STRING", ""));
    assert_eq!(problems(&shape)[0].0, "orderId");
    for (field, kind, value, ok) in [
        ("customerEmail", "EMAIL", "a@b", true),
        ("customerEmail", "EMAIL", "@b", false),
        ("orderUrl", "URL", "HTTPS://shop.example/o", true),
        ("orderUrl", "URL", "https://", false),
        ("orderUrl", "URL", "https://shop.example/a b", false),
    ] {
        let mut shape = good();
        shape
            .references
            .insert(field.into(), reference(kind, value));
        assert_eq!(problems(&shape).is_empty(), ok, "{value}");
    }
}

#[test]
fn a_template_file_that_is_not_one_is_refused_and_an_empty_default_fills_nothing() {
    for (broken, said) in [
        (json!({"Id": "t", "Fields": {"a": 1}}), "Fields is a list"),
        (
            json!({"Id": "t", "Fields": [{"Id": {"Name": "p"}, "Type": "SINGLE_SELECT", "SingleSelectOptions": [1]}]}),
            "SingleSelectOptions are texts",
        ),
        (
            json!({"Id": "t", "Fields": [{"Id": {"Name": "p"}, "Type": "TEXT"}, {"Id": {"Name": "p"}, "Type": "NUMBER"}]}),
            "field 'p' is defined twice",
        ),
        (json!({"Fields": []}), "a task template has an Id"),
    ] {
        assert_eq!(TaskTemplate::from_json(&broken).unwrap_err(), said);
    }
    let t = TaskTemplate::from_json(&json!({
        "Id": "t", "ContactFlowId": "f",
        "Fields": [{"Id": {"Name": "p"}, "Type": "TEXT"}],
        "Constraints": {"RequiredFields": [{"Id": {"Name": "p"}}]},
        "Defaults": {"DefaultFieldValues": [{"Id": {"Name": "p"}, "DefaultValue": ""}]},
    }))
    .unwrap();
    assert!(t.defaulted().is_empty());
    assert_eq!(t.check(&Shape::default())[0].field, "p");
}
