@echo off
rem uninstall.cmd - stop and remove cowfat.sys from a Windows test machine.
rem
rem   Run in an elevated cmd.exe or PowerShell ("Run as administrator"):
rem
rem     uninstall.cmd               stop the driver, delete the cowfat service, remove
rem                                 %SystemRoot%\System32\drivers\cowfat.sys
rem     uninstall.cmd /removecert   the same, and remove the package's test certificate from
rem                                 Root and TrustedPublisher (needs cowfat-test.cer next to
rem                                 this script)
rem     uninstall.cmd /wine         CI under Wine only (scripts/wine-tests): skips the
rem                                 administrator check; refused outside Wine.
rem
rem   Running it again when nothing is left to remove succeeds and says so.
rem
rem Exit status: 0 removed (or nothing to remove), 1 usage, 2 not an elevated 64-bit prompt,
rem 4 removing the certificate failed, 6 removing the driver file failed, 7 stopping the
rem driver failed, 8 deleting the service failed.

setlocal EnableExtensions
set "here=%~dp0"
set "service=cowfat"
set "target=%SystemRoot%\System32\drivers\cowfat.sys"
set "log=%TEMP%\cowfat-uninstall.log"
set "wine="
set "remove_cert="

if "%~1"=="" goto args_done
if /i "%~1"=="/wine" set "wine=1"
if /i "%~1"=="/removecert" set "remove_cert=1"
if defined wine goto args_done
if defined remove_cert goto args_done
echo uninstall.cmd: unknown argument "%~1"
echo Usage: uninstall.cmd [/removecert]    ^(elevated prompt^)
echo        uninstall.cmd /wine            ^(CI under Wine only^)
exit /b 1
:args_done
if not "%~2"=="" (
    echo uninstall.cmd: one argument at most; usage: uninstall.cmd [/removecert ^| /wine]
    exit /b 1
)
if defined wine (
    reg query "HKLM\Software\Wine" >nul 2>&1
    if errorlevel 1 (
        echo uninstall.cmd: /wine is for CI under Wine only, and this is not Wine. Run
        echo uninstall.cmd without arguments.
        exit /b 1
    )
    echo uninstall.cmd: Wine mode: the administrator check is skipped.
)

echo Removing cowfat

rem ---- 1. an elevated 64-bit prompt ------------------------------------------------------
if defined PROCESSOR_ARCHITEW6432 (
    echo [1/5] FAILED: this is a 32-bit command prompt. Open the 64-bit one
    echo       ^(%SystemRoot%\System32\cmd.exe^) as administrator and run uninstall.cmd again.
    exit /b 2
)
if defined wine (
    echo [1/5] Administrator: not checked under Wine
    goto admin_done
)
fltmc >nul 2>&1
if errorlevel 1 (
    echo [1/5] FAILED: not running as administrator.
    echo       Right-click "Command Prompt" or "Terminal" and choose "Run as administrator",
    echo       then run uninstall.cmd again.
    exit /b 2
)
echo [1/5] Administrator: yes
:admin_done

rem ---- 2. stop ---------------------------------------------------------------------------
call :read_state
if not defined svc_state (
    echo [2/5] Stop: there is no cowfat service
    goto stopped
)
if "%svc_state%"=="1" (
    echo [2/5] Stop: cowfat is not running
    goto stopped
)
sc.exe stop %service% >"%log%" 2>&1
if errorlevel 1 goto stop_failed
rem The stop may be pending for a moment: give it up to ten seconds.
set /a tries=0
:wait_for_stop
call :read_state
if "%svc_state%"=="1" goto stop_done
set /a tries+=1
if %tries% geq 10 goto stop_failed
ping -n 2 127.0.0.1 >nul
goto wait_for_stop
:stop_failed
call :read_state
if not "%svc_state%"=="1" (
    echo [2/5] FAILED: cowfat did not stop ^(state %svc_state%^):
    type "%log%"
    echo       A cowfat volume is probably still mounted. Detach every cowfat disk ^(Disk
    echo       Management: right-click the disk, Detach VHD; or in PowerShell
    echo       Dismount-DiskImage -ImagePath C:\path\to\disk.vhdx^), close programs using it,
    echo       and run uninstall.cmd again.
    exit /b 7
)
:stop_done
echo [2/5] Stop: cowfat stopped
:stopped

rem ---- 3. the service --------------------------------------------------------------------
if not defined svc_state (
    echo [3/5] Service: nothing to delete
    goto service_done
)
sc.exe delete %service% >"%log%" 2>&1
if errorlevel 1 (
    echo [3/5] FAILED: sc.exe delete cowfat failed:
    type "%log%"
    exit /b 8
)
echo [3/5] Service: cowfat deleted
:service_done

rem ---- 4. the driver file ----------------------------------------------------------------
if not exist "%target%" (
    echo [4/5] Driver file: %target% is not there
    goto file_done
)
del /f "%target%" >"%log%" 2>&1
if exist "%target%" (
    echo [4/5] FAILED: could not delete %target%:
    type "%log%"
    echo       Restart Windows and run uninstall.cmd again.
    exit /b 6
)
echo [4/5] Driver file: %target% deleted
:file_done

rem ---- 5. the test certificate -----------------------------------------------------------
if defined wine (
    echo [5/5] Test certificate: none under Wine ^(install.cmd /wine imports none^)
    goto done
)
if not defined remove_cert (
    echo [5/5] Test certificate: left trusted. To remove it too: uninstall.cmd /removecert
    echo       ^(or certutil -delstore Root and TrustedPublisher with its SHA-1 thumbprint^).
    goto done
)
if not exist "%here%cowfat-test.cer" (
    echo [5/5] FAILED: %here%cowfat-test.cer is missing: it names the certificate to remove.
    exit /b 4
)
rem The thumbprint is the SHA-1 of the DER certificate file; certutil prints it on the second
rem line (with spaces between byte pairs on older Windows).
set "thumbprint="
for /f "skip=1 delims=" %%h in ('certutil -hashfile "%here%cowfat-test.cer" SHA1') do (
    if not defined thumbprint set "thumbprint=%%h"
)
if not defined thumbprint (
    echo [5/5] FAILED: certutil could not hash %here%cowfat-test.cer.
    exit /b 4
)
set "thumbprint=%thumbprint: =%"
call :remove_from_store Root || exit /b 4
call :remove_from_store TrustedPublisher || exit /b 4
echo [5/5] Test certificate %thumbprint%: not trusted any more

:done
echo.
echo cowfat is removed. Test signing stays on; to turn it off: bcdedit /set testsigning off
echo ^(then restart^).
exit /b 0

rem ---- helpers ---------------------------------------------------------------------------

rem Removes the certificate from one store of the local machine, when it is there.
:remove_from_store
certutil -store %1 %thumbprint% >nul 2>&1
if errorlevel 1 (
    echo       %1: not there
    exit /b 0
)
certutil -delstore %1 %thumbprint% >"%log%" 2>&1
if errorlevel 1 (
    echo [5/5] FAILED: certutil could not remove the certificate from %1:
    type "%log%"
    exit /b 1
)
echo       %1: removed
exit /b 0

rem Sets svc_state to the service's state number from sc.exe query (1 stopped, 4 running;
rem empty when there is no such service). Numbers, not words: they are the same in every
rem language.
:read_state
set "svc_state="
for /f "tokens=1,3" %%a in ('sc.exe query %service% 2^>nul') do (
    if /i "%%a"=="STATE" set "svc_state=%%b"
)
goto :eof
