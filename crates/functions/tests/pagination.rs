//! `paginate`: every document exactly once in both orders, pages filled with documents that
//! pass a filter, and cursors that only work for the query they came from.

mod common;

use value::Value;

use common::{TodoApp, args, object, page_opts, paginate_all, texts};

#[test]
fn paginate_visits_every_document_once() {
    let app = TodoApp::open();
    let mut inserted = Vec::new();
    for i in 0..23 {
        let id = app
            .mutation(
                "todos:add",
                args(&[("text", format!("t{i}").into()), ("userId", "u".into())]),
            )
            .expect("add");
        inserted.push(id.as_str().expect("id").to_string());
    }
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    for _ in 0..10 {
        let opts = args(&[
            ("numItems", Value::Float64(5.0)),
            ("cursor", cursor.clone()),
        ]);
        let result = app
            .query("todos:page", args(&[("paginationOpts", opts)]))
            .expect("page");
        let Value::Object(result) = result else {
            panic!("not an object")
        };
        let Value::Array(page) = &result["page"] else {
            panic!("no page")
        };
        assert!(page.len() <= 5);
        for doc in page {
            seen.push(
                doc.as_object().expect("doc")["_id"]
                    .as_str()
                    .expect("id")
                    .to_string(),
            );
        }
        assert!(
            result["continueCursor"].as_str().is_some(),
            "continueCursor is always a string"
        );
        if result["isDone"] == Value::Boolean(true) {
            break;
        }
        cursor = result["continueCursor"].clone();
    }
    assert_eq!(seen, inserted, "every document once, in creation order");
}

#[test]
fn paginate_in_descending_order_visits_every_document_once() {
    let app = TodoApp::open();
    let inserted: Vec<String> = (0..23).map(|i| format!("t{i:02}")).collect();
    for text in &inserted {
        app.mutation(
            "todos:add",
            args(&[("text", text.as_str().into()), ("userId", "u".into())]),
        )
        .expect("add");
    }
    let pages = paginate_all(&app, "todos:pageDesc", &[], 5.0);
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [5, 5, 5, 5, 3]
    );
    let mut expected = inserted.clone();
    expected.reverse();
    assert_eq!(
        pages.concat(),
        expected,
        "newest first, no duplicate, none missing"
    );
}

#[test]
fn paginate_with_a_filter_fills_pages_with_matching_documents_in_both_orders() {
    let app = TodoApp::open();
    for i in 0..30 {
        app.mutation(
            "todos:addDone",
            args(&[
                ("text", format!("d{i:02}").into()),
                ("completed", Value::Boolean(i % 3 == 0)),
            ]),
        )
        .expect("add");
    }
    for order in ["asc", "desc"] {
        let pages = paginate_all(&app, "todos:pageDone", &[("order", order.into())], 4.0);
        let mut expected: Vec<String> = (0..30)
            .filter(|i| i % 3 == 0)
            .map(|i| format!("d{i:02}"))
            .collect();
        if order == "desc" {
            expected.reverse();
        }
        assert_eq!(pages.concat(), expected, "{order}");
        assert_eq!(
            pages.iter().map(Vec::len).collect::<Vec<_>>(),
            [4, 4, 2],
            "{order}: pages are filled with documents that pass the filter"
        );
    }
}

#[test]
fn a_cursor_only_works_for_the_query_it_came_from() {
    let app = TodoApp::open();
    for i in 0..4 {
        for user in ["u1", "u2"] {
            app.mutation(
                "todos:add",
                args(&[
                    ("text", format!("{user}-{i}").into()),
                    ("userId", user.into()),
                ]),
            )
            .expect("add");
        }
    }
    let first_page = |path: &str, extra: &[(&str, Value)], cursor: Value| {
        let mut a = extra.to_vec();
        a.push(("paginationOpts", page_opts(2.0, cursor)));
        app.query(path, args(&a))
    };
    let page = first_page("todos:page", &[], Value::Null).expect("page");
    let cursor = object(&page)["continueCursor"].clone();
    let next = first_page("todos:page", &[], cursor.clone()).expect("the same query accepts it");
    assert_eq!(texts(&object(&next)["page"]), ["u1-1", "u2-1"]);

    let invalid = |e: functions::FunctionError| {
        assert!(
            e.message.starts_with("Uncaught Error: InvalidCursor: ")
                && e.message.contains("from a different query"),
            "{}",
            e.message
        );
    };
    // Another order, another index.
    invalid(first_page("todos:pageDesc", &[], cursor.clone()).unwrap_err());
    invalid(
        first_page(
            "todos:pageOfUser",
            &[("userId", "u1".into())],
            cursor.clone(),
        )
        .unwrap_err(),
    );

    // The same function with other arguments reads another range.
    let u1 = first_page("todos:pageOfUser", &[("userId", "u1".into())], Value::Null).expect("page");
    let u1_cursor = object(&u1)["continueCursor"].clone();
    invalid(
        first_page(
            "todos:pageOfUser",
            &[("userId", "u2".into())],
            u1_cursor.clone(),
        )
        .unwrap_err(),
    );
    let u1_next = first_page("todos:pageOfUser", &[("userId", "u1".into())], u1_cursor)
        .expect("same arguments");
    assert_eq!(texts(&object(&u1_next)["page"]), ["u1-2", "u1-3"]);

    // The cursor of a finished query is bound too.
    let done = first_page(
        "todos:pageOfUser",
        &[("userId", "u1".into())],
        object(&u1_next)["continueCursor"].clone(),
    )
    .expect("last page");
    let done = object(&done);
    assert_eq!(done["isDone"], Value::Boolean(true));
    let end = done["continueCursor"].clone();
    invalid(first_page("todos:pageOfUser", &[("userId", "u2".into())], end.clone()).unwrap_err());
    let again = first_page("todos:pageOfUser", &[("userId", "u1".into())], end).expect("end");
    assert_eq!(object(&again)["page"], Value::Array(vec![]));
    assert_eq!(object(&again)["isDone"], Value::Boolean(true));

    // Strings that were never cursors.
    for bogus in ["knope!", "hello", "", "_end"] {
        let e = first_page("todos:page", &[], bogus.into()).unwrap_err();
        assert!(
            e.message.contains("InvalidCursor: ") && e.message.contains("not a cursor"),
            "{bogus:?}: {}",
            e.message
        );
    }
    let e = first_page("todos:page", &[], Value::Float64(5.0)).unwrap_err();
    assert!(
        e.message.contains("cursor must be a string"),
        "{}",
        e.message
    );
}
