@echo off
rem install.cmd - install and start cowfat.sys on a Windows TEST machine.
rem
rem   Run in an elevated cmd.exe or PowerShell ("Run as administrator"), from the driver
rem   package directory or anywhere else (it finds its files next to itself):
rem
rem     install.cmd
rem
rem   It checks administrator rights and test signing, trusts the package's test certificate
rem   (Root and TrustedPublisher), copies cowfat.sys to %SystemRoot%\System32\drivers, creates
rem   the cowfat service or corrects it (file system driver, demand start, group "File System")
rem   and starts it. Running it again changes nothing that is already right.
rem
rem   install.cmd /wine   CI under Wine only (scripts/wine-tests): skips the administrator and
rem                       test-signing checks, the certificate import and the start, which
rem                       Wine cannot do; refused outside Wine.
rem
rem Exit status: 0 installed and running (under /wine: installed), 1 usage, 2 not an elevated
rem 64-bit prompt, 3 test signing is not on, 4 certificate import failed, 5 package files
rem missing, 6 copying the driver failed, 7 creating or correcting the service failed,
rem 8 starting the driver failed.

setlocal EnableExtensions
set "here=%~dp0"
set "service=cowfat"
set "display_name=cowfat file system driver"
set "service_key=HKLM\SYSTEM\CurrentControlSet\Services\cowfat"
rem The sc route's image path, relative to %SystemRoot% as the kernel resolves it.
set "image_path=System32\drivers\cowfat.sys"
set "target=%SystemRoot%\System32\drivers\cowfat.sys"
set "log=%TEMP%\cowfat-install.log"
set "wine="
set "svc_action="

if "%~1"=="" goto args_done
if /i "%~1"=="/wine" (
    set "wine=1"
    goto args_done
)
echo install.cmd: unknown argument "%~1"
echo Usage: install.cmd            ^(elevated prompt, on a test machine^)
echo        install.cmd /wine      ^(CI under Wine only^)
exit /b 1
:args_done
if not "%~2"=="" (
    echo install.cmd: one argument at most; usage: install.cmd [/wine]
    exit /b 1
)
if defined wine (
    reg query "HKLM\Software\Wine" >nul 2>&1
    if errorlevel 1 (
        echo install.cmd: /wine is for CI under Wine only, and this is not Wine. Run install.cmd
        echo without arguments.
        exit /b 1
    )
    echo install.cmd: Wine mode: administrator, test signing, certificate and start are skipped.
)

echo Installing cowfat from %here%

rem ---- 1. an elevated 64-bit prompt ------------------------------------------------------
rem A 32-bit cmd.exe on 64-bit Windows would copy into SysWOW64 instead of System32.
if defined PROCESSOR_ARCHITEW6432 (
    echo [1/6] FAILED: this is a 32-bit command prompt. Open the 64-bit one
    echo       ^(%SystemRoot%\System32\cmd.exe^) as administrator and run install.cmd again.
    exit /b 2
)
if defined wine (
    echo [1/6] Administrator: not checked under Wine
    goto admin_done
)
rem fltmc works only elevated, and is on every Windows since Vista.
fltmc >nul 2>&1
if errorlevel 1 (
    echo [1/6] FAILED: not running as administrator.
    echo       Right-click "Command Prompt" or "Terminal" and choose "Run as administrator",
    echo       then run install.cmd again.
    exit /b 2
)
echo [1/6] Administrator: yes
:admin_done

rem ---- 2. test signing -------------------------------------------------------------------
rem SystemStartOptions holds the options the running system booted with: test signing that
rem bcdedit has turned on counts only after the reboot.
if defined wine (
    echo [2/6] Test signing: not checked under Wine ^(no bcdedit^)
    goto test_signing_done
)
reg query "HKLM\SYSTEM\CurrentControlSet\Control" /v SystemStartOptions 2>nul | findstr /i /c:"TESTSIGNING" >nul
if not errorlevel 1 (
    echo [2/6] Test signing: on
    goto test_signing_done
)
bcdedit /enum {current} 2>nul | findstr /i /r /c:"^testsigning  *Yes" >nul
if not errorlevel 1 (
    echo [2/6] FAILED: test signing is turned on but not active yet: restart Windows
    echo       ^(shutdown /r /t 0^), then run install.cmd again.
    exit /b 3
)
echo [2/6] FAILED: test signing is off. Windows loads this test-signed driver only with it on.
echo       Turn it on in this elevated prompt and restart:
echo.
echo           bcdedit /set testsigning on
echo           shutdown /r /t 0
echo.
echo       Secure Boot must be off in the machine's firmware settings ^(Hyper-V: the VM's
echo       Settings, Security, clear "Enable Secure Boot"^); with it on, bcdedit answers "The
echo       value is protected by Secure Boot policy". If BitLocker protects the system drive,
echo       Windows may ask for its recovery key at the next start: have it at hand.
reg query "HKLM\SYSTEM\CurrentControlSet\Control\SecureBoot\State" /v UEFISecureBootEnabled 2>nul | findstr /i /c:"0x1" >nul
if not errorlevel 1 echo       Secure Boot is ON on this machine right now.
echo       Then run install.cmd again.
exit /b 3
:test_signing_done

rem ---- 3. the package's files and the test certificate -----------------------------------
if not exist "%here%cowfat.sys" (
    echo [3/6] FAILED: %here%cowfat.sys is missing. Run install.cmd from the unpacked driver
    echo       package ^(target\cowfat-package from scripts/build-driver^).
    exit /b 5
)
if not exist "%here%cowfat-test.cer" (
    echo [3/6] FAILED: %here%cowfat-test.cer is missing. Copy the whole driver package.
    exit /b 5
)
if defined wine (
    echo [3/6] Test certificate: not imported under Wine ^(no certutil^)
    goto certificate_done
)
rem -f: replaces a copy already there, so a second run succeeds the same way.
certutil -f -addstore Root "%here%cowfat-test.cer" >"%log%" 2>&1
if errorlevel 1 goto certificate_failed
certutil -f -addstore TrustedPublisher "%here%cowfat-test.cer" >"%log%" 2>&1
if errorlevel 1 goto certificate_failed
echo [3/6] Test certificate: trusted on this machine ^(Root, TrustedPublisher^)
goto certificate_done
:certificate_failed
echo [3/6] FAILED: certutil could not import %here%cowfat-test.cer:
type "%log%"
exit /b 4
:certificate_done

rem ---- 4. the driver file ----------------------------------------------------------------
rem A running driver's file is in use: replace it only after a stop, and only when it differs.
set "running="
call :read_state
if "%svc_state%"=="4" set "running=1"
if not defined running goto copy_driver
fc /b "%here%cowfat.sys" "%target%" >nul 2>&1
if not errorlevel 1 (
    echo [4/6] Driver file: %target% is this package's, and running
    goto driver_file_done
)
echo [4/6] FAILED: cowfat is running another cowfat.sys. Detach every cowfat disk ^(Disk
echo       Management: right-click the disk, Detach VHD; or Dismount-DiskImage^), stop the
echo       driver with "sc.exe stop cowfat", then run install.cmd again.
exit /b 6
:copy_driver
copy /y "%here%cowfat.sys" "%target%" >"%log%" 2>&1
if errorlevel 1 (
    echo [4/6] FAILED: could not copy cowfat.sys to %target%:
    type "%log%"
    exit /b 6
)
if not exist "%target%" (
    echo [4/6] FAILED: %target% is not there after the copy.
    exit /b 6
)
echo [4/6] Driver file: copied to %target%
:driver_file_done

rem ---- 5. the service --------------------------------------------------------------------
sc.exe query %service% >nul 2>&1
if errorlevel 1 goto create_service
call :read_service
if defined service_ok (
    echo [5/6] Service: %service% exists and is configured
    goto service_done
)
rem Left by an earlier attempt, by hand or by the INF route (its image is in the driver store).
echo       service %service% exists with Type=%svc_type% Start=%svc_start% Group="%svc_group%"
echo       ImagePath="%svc_image%": correcting it
sc.exe config %service% type= filesys start= demand group= "File System" binPath= "%image_path%" DisplayName= "%display_name%" >"%log%" 2>&1
if errorlevel 1 (
    echo [5/6] FAILED: sc.exe config could not correct the existing service:
    type "%log%"
    echo       Remove it with uninstall.cmd ^(or "sc.exe delete cowfat"^) and run install.cmd again.
    exit /b 7
)
set "svc_action=corrected"
goto check_service
:create_service
sc.exe create %service% type= filesys start= demand group= "File System" binPath= "%image_path%" DisplayName= "%display_name%" >"%log%" 2>&1
if errorlevel 1 (
    echo [5/6] FAILED: sc.exe create failed:
    type "%log%"
    echo       1072 "marked for deletion": close the Services console and Event Viewer, or
    echo       restart Windows, then run install.cmd again.
    exit /b 7
)
:check_service
if not defined svc_action set "svc_action=created"
call :read_service
if not defined service_ok (
    echo [5/6] FAILED: the service key reads Type=%svc_type% Start=%svc_start% Group="%svc_group%"
    echo       ImagePath="%svc_image%" after sc.exe; expected Type=0x2 Start=0x3 Group="File System".
    exit /b 7
)
echo [5/6] Service: %service% %svc_action% ^(file system driver, demand start^)
:service_done

rem ---- 6. start --------------------------------------------------------------------------
if defined wine (
    echo [6/6] Start: skipped under Wine ^(it cannot load a kernel file system driver^)
    echo Installed ^(Wine mode^).
    exit /b 0
)
if defined running (
    echo [6/6] Start: cowfat is already running
    goto next_steps
)
sc.exe start %service% >"%log%" 2>&1
set "start_error=%errorlevel%"
if "%start_error%"=="0" goto started
if "%start_error%"=="1056" goto started
echo [6/6] FAILED: sc.exe start cowfat failed with error %start_error%:
type "%log%"
if "%start_error%"=="577" (
    echo       577: Windows did not accept the driver's signature. Test signing must be active
    echo       ^(bcdedit /enum {current} shows "testsigning Yes", and the machine restarted
    echo       since^) and Secure Boot off.
)
if "%start_error%"=="1275" (
    echo       1275: the driver was blocked. On a test VM, turn off Memory integrity ^(Windows
    echo       Security, Device security, Core isolation^) and restart.
)
echo       The System event log ^(eventvwr.msc^) has the kernel's reason.
exit /b 8
:started
echo [6/6] Start: cowfat is running

:next_steps
echo.
echo cowfat is installed and running. Next:
echo   1. Attach the cowfat disk NOW, while the driver runs ^(if it does not, Windows sees a
echo      RAW disk^): Disk Management, Action, Attach VHD; or in PowerShell
echo          Mount-DiskImage -ImagePath C:\path\to\disk.vhdx
echo   2. If Windows says "You need to format the disk": press CANCEL. It means cowfat did
echo      not mount the volume; formatting would destroy the disk image.
echo   3. After every restart, run "sc.exe start cowfat" before attaching the disk
echo      ^(the driver is demand-start^).
echo   INSTALL.txt says more ^(detaching, test programs, crash dumps, Driver Verifier^).
exit /b 0

rem ---- helpers ---------------------------------------------------------------------------

rem Reads the service's registry key (what the service control manager keeps for it) and
rem sets service_ok when it is the file system driver service install.cmd makes.
:read_service
set "svc_type="
set "svc_start="
set "svc_group="
set "svc_image="
set "service_ok="
for /f "tokens=1,2,*" %%a in ('reg query "%service_key%" 2^>nul') do (
    if /i "%%a"=="Type" set "svc_type=%%c"
    if /i "%%a"=="Start" set "svc_start=%%c"
    if /i "%%a"=="Group" set "svc_group=%%c"
    if /i "%%a"=="ImagePath" set "svc_image=%%c"
)
if /i not "%svc_type%"=="0x2" goto :eof
if /i not "%svc_start%"=="0x3" goto :eof
if /i not "%svc_group%"=="File System" goto :eof
rem The same file under each name the service control manager may store it as.
set "image_ok="
if /i "%svc_image%"=="%image_path%" set "image_ok=1"
if /i "%svc_image%"=="\SystemRoot\%image_path%" set "image_ok=1"
if /i "%svc_image%"=="%%SystemRoot%%\%image_path%" set "image_ok=1"
if /i "%svc_image%"=="%SystemRoot%\%image_path%" set "image_ok=1"
if /i "%svc_image%"=="\??\%SystemRoot%\%image_path%" set "image_ok=1"
if not defined image_ok goto :eof
set "service_ok=1"
goto :eof

rem Sets svc_state to the service's state number from sc.exe query (1 stopped, 4 running;
rem empty when there is no such service). Numbers, not words: they are the same in every
rem language.
:read_state
set "svc_state="
for /f "tokens=1,3" %%a in ('sc.exe query %service% 2^>nul') do (
    if /i "%%a"=="STATE" set "svc_state=%%b"
)
goto :eof
