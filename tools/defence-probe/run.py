#!/usr/bin/env python3
"""Defence removed, then restored: for each probe in probes.py (or those named on the command line),
remove that one defence, build, run the security tests, print which failed, restore.
The table in docs/security.md ('Each context rule removed') is this script's output."""
import sys, subprocess, re, os, time
here=os.path.dirname(os.path.abspath(__file__)); sys.path.insert(0, here); from probes import PROBES
# Run it in a scratch worktree (git worktree add ../probe HEAD): it edits and restores source files.
root=os.path.abspath(os.path.join(here,'..','..'))
filt='FullyQualifiedName~AttackCatalogTests|FullyQualifiedName~ConfidentialContextTests|FullyQualifiedName~ConfidentialInferenceTests|FullyQualifiedName~PartiesTests|FullyQualifiedName~DeviceSecurityEngineTests|FullyQualifiedName~HardwareInterfaceTests'
only = sys.argv[1:]
for name, path, old, new in PROBES:
    if only and name not in only: continue
    p=os.path.join(root,path); s=open(p).read()
    n=s.count(old)
    if n!=1: print(f'{name}: pattern found {n} times', flush=True); continue
    open(p,'w').write(s.replace(old,new))
    t0=time.time()
    try:
        b=subprocess.run(['dotnet','build','tests/AscendCC.Runtime.Tests','-c','Release','-p:TreatWarningsAsErrors=false','-nologo','-v','q'],cwd=root,capture_output=True,text=True)
        if b.returncode!=0:
            print(f'{name}: BUILD FAILED\n'+b.stdout[-2000:], flush=True); continue
        r=subprocess.run(['dotnet','test','tests/AscendCC.Runtime.Tests','-c','Release','--no-build','--filter',filt,'-nologo'],cwd=root,capture_output=True,text=True)
    finally:
        open(p,'w').write(s)
    failed=sorted(set(re.findall(r'^\s*Failed (\S+)', r.stdout, re.M)))
    if r.returncode!=0 and not failed: print(r.stdout[-2000:])
    print(f'{name} ({time.time()-t0:.0f}s): {len(failed)} failed: {" ".join(failed) or "NONE - no test notices this defence"}', flush=True)
