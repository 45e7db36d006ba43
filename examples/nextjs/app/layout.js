import Script from 'next/script';

export const metadata = { title: 'auth-bridge example (Next.js)' };

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body style={{ font: '15px system-ui, sans-serif', maxWidth: '44rem', margin: '2rem auto', padding: '0 1rem' }}>
        <nav>
          <a href="/">next-auth v4</a> · <a href="/v5">Auth.js v5</a>
        </nav>
        {children}
        {/* auth-bridge's script: signs a NextAuth user into Clerk once Clerk's own script has loaded. */}
        <Script src="/__auth-bridge/client.js" strategy="afterInteractive" />
      </body>
    </html>
  );
}
