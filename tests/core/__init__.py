"""Pure-core tests: config, render, policy XML, plan, OpenAPI documents. Tables, no mocks."""
