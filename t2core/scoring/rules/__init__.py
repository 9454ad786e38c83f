"""Pure judging rules that may evaluate model text, so they run inside the sandbox
(t2core.sandbox.tool): standard library and the venv's packages only, no t2core imports, and
relative imports between them (the folder is a package both here and in the sandbox)."""
