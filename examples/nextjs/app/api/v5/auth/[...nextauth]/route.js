import { handlers } from '../../../../../lib/auth-v5.js';

export const { GET, POST } = handlers;
