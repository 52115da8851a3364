import { registerHooks } from 'node:module';

/**
 * Lets a plain `node` child process import src/ directly: Node strips the types itself, and this hook
 * maps the `.js` specifiers that NodeNext requires onto the `.ts` files beside them.
 */
registerHooks({
  resolve(specifier, context, nextResolve) {
    try {
      return nextResolve(specifier, context);
    } catch (error) {
      if (!specifier.startsWith('.') || !specifier.endsWith('.js')) throw error;
      return nextResolve(`${specifier.slice(0, -3)}.ts`, context);
    }
  },
});
