"""Who may do what, and what happens when they do: roles, tokens, guards, audit, the facade."""
