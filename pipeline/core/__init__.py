"""What every stage needs: typed params (params), atomic writes and safe names (files), the one-line
UserError (errors), how a stage starts and ends (runner), colours (colours) and the moments where tests
may kill a stage (killpoints). Imports nothing else of ours."""
