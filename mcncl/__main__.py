from mcncl.cli import app

app(prog_name="mcncl")
