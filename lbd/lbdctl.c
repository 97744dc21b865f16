/* lbdctl: to come */
int	main(void);

int
main(void)
{
	return (1);
}
