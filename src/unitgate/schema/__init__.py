"""The GraphQL face of unitgate: types, typed-error unions and the schema object."""
