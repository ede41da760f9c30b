use super::*;

fn registry() -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Registry::in_folder(dir.path()).expect("new registry");
    (dir, registry)
}

/// A case as `import` or a test makes it, without a report folder.
fn add_case(registry: &mut Registry, day: &str, urgent: bool) -> i64 {
    registry
        .write(|tx| {
            tx.execute(
                "INSERT INTO cases (source, received_day, urgent, recorded_at, incident)
                 VALUES ('import', ?1, ?2, ?3, 0)",
                rusqlite::params![day, urgent, now()],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute("UPDATE cases SET incident = id WHERE id = ?1", [id])?;
            Ok(id)
        })
        .expect("case")
}

#[test]
fn a_case_moves_forward_only_and_keeps_its_history() {
    let (_dir, mut registry) = registry();
    let case = add_case(&mut registry, "2026-11-02", true);
    let to = |s: &str| CaseUpdate {
        status: Some(Status::parse(s).expect("status")),
        ..CaseUpdate::default()
    };
    registry
        .update_case(case, &to("risk assessment"))
        .expect("forward");
    registry
        .update_case(
            case,
            &CaseUpdate {
                status: Some(Status::MeasureRequested),
                risk: Some(Risk::parse("alto").expect("risk")),
                assign: Some("Rosa".into()),
                note: Some("Pedimos garantías a la prefectura.".into()),
            },
        )
        .expect("forward");
    assert!(matches!(
        registry.update_case(case, &to("recibido")),
        Err(RegistryError::BadTransition { .. })
    ));
    registry
        .update_case(case, &to("medida otorgada"))
        .expect("granted");
    assert!(matches!(
        registry.update_case(case, &to("medida_denegada")),
        Err(RegistryError::BadTransition { .. })
    ));
    registry.update_case(case, &to("closed")).expect("closed");
    let row = registry.case(case).expect("case");
    assert_eq!(row.status, "cerrado");
    assert_eq!(row.risk.as_deref(), Some("alto"));
    assert_eq!(row.assigned.as_deref(), Some("Rosa"));
    let history: Vec<String> = registry
        .history(case)
        .expect("history")
        .into_iter()
        .map(|h| h.status)
        .collect();
    assert_eq!(
        history,
        [
            "evaluacion_riesgo",
            "medida_solicitada",
            "medida_otorgada",
            "cerrado"
        ]
    );
    let acted: Option<String> = registry
        .conn()
        .query_row(
            "SELECT first_acted_at FROM cases WHERE id = ?1",
            [case],
            |r| r.get(0),
        )
        .expect("first acted");
    assert!(acted.is_some_and(|a| a.ends_with('Z')));
    assert!(matches!(
        registry.update_case(999, &to("cerrado")),
        Err(RegistryError::UnknownCase(999))
    ));
    assert!(matches!(
        Status::parse("archivado"),
        Err(RegistryError::Unknown(_))
    ));
}

#[test]
fn linked_cases_share_the_smallest_case_as_their_incident() {
    let (_dir, mut registry) = registry();
    let [a, b, c] = [0, 1, 2].map(|_| add_case(&mut registry, "2026-11-03", false));
    assert_eq!(registry.link(c, b).expect("link"), b);
    assert_eq!(registry.link(b, a).expect("link"), a);
    for id in [a, b, c] {
        assert_eq!(registry.case(id).expect("case").incident, a);
    }
    assert!(matches!(
        registry.link(a, 77),
        Err(RegistryError::UnknownCase(77))
    ));
}

#[test]
fn a_foreign_a_newer_or_a_damaged_file_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Not SQLite at all.
    let text = dir.path().join("notes.sqlite3");
    std::fs::write(&text, "casos: 3\n").expect("write");
    assert!(matches!(
        Registry::open(&text),
        Err(RegistryError::Foreign(_))
    ));
    assert_eq!(std::fs::read(&text).expect("read"), b"casos: 3\n");
    // Another program's SQLite database.
    let other = dir.path().join("other.sqlite3");
    rusqlite::Connection::open(&other)
        .and_then(|c| c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);"))
        .expect("other db");
    let before = std::fs::read(&other).expect("read");
    assert!(matches!(
        Registry::open(&other),
        Err(RegistryError::Foreign(_))
    ));
    assert_eq!(std::fs::read(&other).expect("read"), before);
    // From a newer version.
    let newer = dir.path().join("newer.sqlite3");
    drop(Registry::open(&newer).expect("made"));
    rusqlite::Connection::open(&newer)
        .and_then(|c| c.pragma_update(None, "user_version", schema::VERSION + 1))
        .expect("bump");
    assert!(matches!(
        Registry::open(&newer),
        Err(RegistryError::Newer { found, .. }) if found == schema::VERSION + 1
    ));
    // Damaged: a page of the file overwritten.
    let damaged = dir.path().join("damaged.sqlite3");
    {
        let mut registry = Registry::open(&damaged).expect("made");
        for n in 0..200 {
            add_case(&mut registry, &format!("2026-{:02}-01", n % 12 + 1), false);
        }
    }
    let mut bytes = std::fs::read(&damaged).expect("read");
    assert!(bytes.len() > 3 * 4096, "{} bytes", bytes.len());
    for b in &mut bytes[4096 + 100..2 * 4096] {
        *b = 0x5a;
    }
    std::fs::write(&damaged, &bytes).expect("write");
    let refused = Registry::open(&damaged);
    assert!(
        matches!(refused, Err(RegistryError::Damaged { .. })),
        "{:?}",
        refused.err()
    );
    assert_eq!(std::fs::read(&damaged).expect("read"), bytes, "not rebuilt");
}

#[test]
fn a_version_1_registry_is_migrated_with_its_cases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(REGISTRY_FILE);
    {
        let registry = Registry::open_up_to(&path, 1).expect("version 1");
        assert_eq!(registry.schema_version().expect("version"), 1);
        registry
            .conn()
            .execute(
                "INSERT INTO cases (source, received_day, urgent, recorded_at)
                 VALUES ('import', '2025-06-01', 1, '2025-06-01T10:00:00Z')",
                [],
            )
            .expect("a version-1 case");
    }
    let registry = Registry::open(&path).expect("migrated");
    assert_eq!(registry.schema_version().expect("version"), schema::VERSION);
    let case = registry.case(1).expect("kept");
    assert_eq!(case.incident, 1, "its own incident");
    assert!(case.urgent);
}
