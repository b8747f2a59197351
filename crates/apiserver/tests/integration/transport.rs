//! Authentication, body limits, content types and health endpoints.

use crate::harness::{TestServer, client_with_token, raw};

#[tokio::test]
async fn missing_or_wrong_token_is_401_status() {
    let s = TestServer::start().await;
    for token in [None, Some("wrong")] {
        let c = client_with_token(s.running(), token).await;
        let (code, body) = raw(&c, "GET", "/api/v1/namespaces/default/services", None, Vec::new()).await;
        assert_eq!(code, 401, "{token:?}");
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["reason"], "Unauthorized");
        assert_eq!(body["message"], "Unauthorized");
    }
    // Health is public.
    let c = client_with_token(s.running(), None).await;
    assert_eq!(raw(&c, "GET", "/readyz", None, Vec::new()).await.0, 200);
}

#[tokio::test]
async fn oversized_body_is_413_and_unknown_content_type_is_415() {
    let s = TestServer::start().await;
    let big = vec![b' '; 3 * 1024 * 1024 + 1];
    let (code, body) = raw(&s.client, "POST", "/api/v1/namespaces/default/configmaps", Some("application/json"), big).await;
    assert_eq!(code, 413);
    assert_eq!(body["reason"], "RequestEntityTooLarge");
    let (code, body) = raw(&s.client, "POST", "/api/v1/namespaces/default/configmaps", Some("text/plain"), b"{}".to_vec()).await;
    assert_eq!(code, 415);
    assert_eq!(body["reason"], "UnsupportedMediaType");
}

#[tokio::test]
async fn malformed_json_is_400() {
    let s = TestServer::start().await;
    let (code, body) = raw(&s.client, "POST", "/api/v1/namespaces/default/configmaps", Some("application/json"), b"{\"metadata\": ".to_vec()).await;
    assert_eq!(code, 400);
    assert_eq!(body["reason"], "BadRequest");
}

#[tokio::test]
async fn discovery_lists_every_group() {
    let s = TestServer::start().await;
    let (code, body) = raw(&s.client, "GET", "/apis", None, Vec::new()).await;
    assert_eq!(code, 200);
    let names: Vec<&str> = body["groups"].as_array().into_iter().flatten().filter_map(|g| g["name"].as_str()).collect();
    for g in ["apps", "coordination.k8s.io", "discovery.k8s.io", "networking.k8s.io"] {
        assert!(names.contains(&g), "{g} missing from {names:?}");
    }
}
