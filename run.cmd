@echo off
rem Kudu runs run.cmd from a temporary copy of the WebJob folder; the binary sits beside it.
"%~dp0mapsworker.exe" run
exit /b %ERRORLEVEL%
