/**
 * `nbswarm completion bash`: a bash completion script made from the command tree itself, so it
 * never lists a command or option the binary does not have. zsh loads it with `bashcompinit`.
 */
import type { Command } from 'commander';

export function bashCompletion(program: Command): string {
  const commands = program.commands.filter((c) => c.name() !== 'help');
  const cases = commands
    .map((c) => {
      const opts = [...c.options.flatMap((o) => [o.long, o.short].filter((f): f is string => !!f)), '--help'].join(' ');
      return `    ${c.name()}) opts="${opts}" ;;`;
    })
    .join('\n');
  return `# nbswarm bash completion: eval "$(nbswarm completion bash)" (zsh: autoload -U bashcompinit && bashcompinit first)
_nbswarm() {
  local cur=\${COMP_WORDS[COMP_CWORD]} cmd=\${COMP_WORDS[1]} opts
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W "${commands.map((c) => c.name()).join(' ')} --help --version" -- "$cur") )
    return
  fi
  case "$cmd" in
${cases}
    *) opts="" ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=( $(compgen -W "$opts" -- "$cur") )
  else
    COMPREPLY=( $(compgen -f -- "$cur") )
  fi
}
complete -F _nbswarm nbswarm
`;
}

export function registerCompletionCommand(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script: eval "$(nbswarm completion bash)"')
    .argument('[shell]', 'bash (zsh: with bashcompinit)', 'bash')
    .action((shell: string) => {
      if (shell !== 'bash' && shell !== 'zsh') {
        process.stderr.write(`nbswarm: no completion for shell "${shell.slice(0, 32)}" (hint: bash, or zsh with bashcompinit)\n`);
        process.exitCode = 2;
        return;
      }
      process.stdout.write(bashCompletion(program));
    });
}
