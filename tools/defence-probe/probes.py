# Each probe removes one defence: (name, file, text in the file, what replaces it).
# run.py applies one at a time, builds, runs the security tests and restores the file.
# The texts are the current code's: a probe whose text no longer occurs is reported, not skipped silently.
D='src/AscendCC.Device/'
FW=D+'Confidential/ConfidentialFirmware.cs'
OPS=D+'Operators/Builtin/ConfidentialOperators.cs'
SCH=D+'Scheduler/TaskScheduler.cs'
PROBES = [
 ('open_binding', OPS, 'if (fw.FindSession(session)?.Context is { } bound && bound != context)', 'if (fw.FindSession(session)?.Context is { } bound && bound != context && false)'),
 ('open_required_model', OPS, 'if (!request.RequiredModel.IsEmpty && !CryptographicOperations', 'if (false && !request.RequiredModel.IsEmpty && !CryptographicOperations'),
 ('no_scrub_on_switch', OPS, '''                if (context.Active is not null)
                {
                    context.ScrubSessionState();
                }''', ''),
 ('continue_position', OPS, 'if (start != state.Position)', 'if (false && start != state.Position)'),
 ('continue_session', OPS, 'if (state is null || state.Id != session)', 'if (state is null)'),
 ('decode_before_prompt_fed', OPS, '(seq != 1 || start < state.PromptLength)', '(seq != 1)'),
 ('eager_any_order', FW, 'if (Matches(a, a.Cursor, ref t))', 'int hit = -1; for (int i = 0; i < a.TaskDigests.Length && hit < 0; i++) { if (Matches(a, i, ref t)) hit = i; }\n            if (hit >= 0) { (_eagerModel, _eagerIndex) = (a, hit); return true; }\n            if (Matches(a, a.Cursor, ref t))'),
 ('cursor_advances_on_failure', FW, 'a.Cursor = succeeded && _eagerIndex', 'a.Cursor = _eagerIndex'),
 ('seal_whole_region', OPS, 'if (record.Tag != RegionTag.OutputStaging || !c.IsWholeRegion(1) || record.Size != RecordBytes)', 'if (record.Tag != RegionTag.OutputStaging)'),
 ('seal_needs_pending', OPS, 'PendingStep pending = context.Pending ?? throw', 'PendingStep pending = context.Pending ?? new PendingStep(context.Active!, context.Active!.Position, 1, true) ?? throw'),
 ('d2h_exact_range', FW, '|| t.C != r.Address || (long)t.D != r.Size)', ')'),
 ('dma_write_revokes', SCH, '''            region.CiphertextOnly = false;
            hostSpan.CopyTo(deviceSpan);''', '''            hostSpan.CopyTo(deviceSpan);'''),
 ('d2d_revokes', SCH, '''        to.CiphertextOnly = false;
        from.Slice''', '''        from.Slice'''),
 ('memset_revokes', SCH, '''        region.CiphertextOnly = false;
        region.Slice(address, bytes).Fill(value);''', '''        region.Slice(address, bytes).Fill(value);'''),
 ('kernel_output_revokes', SCH, '''                region.CiphertextOnly = false;
            }
            _resolved[i]''', '''            }
            _resolved[i]'''),
 ('operator_args_locked', OPS, 'if (r is not { Locked: true })', 'if (r is null)'),
 ('operator_args_owned', OPS, '''            if (r.Owner is null)
            {''', '''            if (r.Owner is null && false)
            {'''),
 ('kernel_error_detail', SCH, 'Firmware is { Active: true }\n            ? $"{op.Name}: the kernel rejected', 'Firmware is { Active: false }\n            ? $"{op.Name}: the kernel rejected'),
 ('reset_keeps_profile', SCH, '''            _profile.Clear();
        }
        DataProfiling = false;''', '''        }'''),
 ('sampling_from_host', OPS, 'step[StepBlock.Temperature] = BitConverter.DoubleToInt64Bits(state.Sampling.Temperature);', 'step[StepBlock.Temperature] = request[StepBlock.Temperature];'),
 ('close_session_scrub', FW, '''            c.ScrubSessionState();
            c.Active = null;''', '''            c.Active = null;'''),
 ('owner_bound_model_check', 'src/AscendCC.Runtime/Trusted/DataOwners/DataOwnerSession.cs', 'if (token.Model.IsEmpty || (!expected.IsEmpty && !CryptographicOperations.FixedTimeEquals(expected, token.Model.Span)))', 'if (token.Model.IsEmpty)'),
 ('ownership_non_weights', FW, 'if (r.Owner is not null && r.Owner != context)', 'if (false)'),
]
PROBES += [
 ('switch_at_top_of_open', OPS, '''        if (start != 0)
        {
            throw new ConfidentialOperatorException($"position: a prompt is opened''', '''        { DataSessionState early = fw.Session(session); if (context.Active != early) { context.ScrubSessionState(); context.Active = early; } }
        if (start != 0)
        {
            throw new ConfidentialOperatorException($"position: a prompt is opened'''),
]
