// Swagger UI on the api's generated OpenAPI document. "Authorize" takes an API key for the
// document's bearer scheme (`api_key`) and "Try it out" sends it; the key is kept in this page's
// memory only (persistAuthorization off: never written to localStorage).
window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: false,
  displayRequestDuration: true,
  defaultModelsExpandDepth: 1,
});
